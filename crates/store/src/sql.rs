//! Raw SQL written once for both backends: PostgreSQL's `$n` placeholders, rewritten to `?` for
//! SQLite.

use sea_orm::{DbBackend, Statement, Value as DbValue};

/// Replaces `$1`, `$2`… with `?` for SQLite (parameters are always used in order).
pub(crate) fn sql(backend: DbBackend, text: &str, values: Vec<DbValue>) -> Statement {
    let text = match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    Statement::from_sql_and_values(backend, text, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_are_rewritten() {
        let s = sql(DbBackend::Sqlite, "SELECT $1, '$x', $12", vec![1.into(), 2.into()]);
        assert_eq!(s.sql, "SELECT ?, '$x', ?");
        let p = sql(DbBackend::Postgres, "SELECT $1", vec![1.into()]);
        assert_eq!(p.sql, "SELECT $1");
    }
}
