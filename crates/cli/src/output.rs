//! Output as a table (default), JSON or YAML. Commands build JSON values; this module renders
//! them. Every table goes through comfy-table, so columns line up whatever the cell widths.

use anyhow::Result;
use clap::ValueEnum;
use comfy_table::{ColumnConstraint, Table, Width, presets};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// A column of a table: its header and the JSON key it shows.
pub type Column = (&'static str, &'static str);

/// Spaces between two columns.
const GAP: u16 = 2;

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            items.iter().map(|i| cell(Some(i))).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    }
}

/// A borderless table: columns separated by two spaces, no padding on the left.
fn table(headers: Option<&[Column]>, rows: Vec<Vec<String>>, columns: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if let Some(headers) = headers {
        table.set_header(headers.iter().map(|(h, _)| *h));
    }
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 < columns { GAP } else { 0 }));
    }
    table
}

fn lines(table: &Table) -> Vec<String> {
    table.lines().map(|l| l.trim_end().to_owned()).collect()
}

fn emit(table: &Table) {
    for line in lines(table) {
        println!("{line}");
    }
}

/// The rows of `value` (an object or an array of objects) as the cells of `columns`.
fn cells(value: &Value, columns: &[Column]) -> Vec<Vec<String>> {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    rows.iter().map(|r| columns.iter().map(|(_, k)| cell(r.get(*k))).collect()).collect()
}

/// Prints `value` (an object or an array of objects) in `format`; tables show `columns`.
pub fn print(format: Format, value: &Value, columns: &[Column]) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        Format::Table => emit(&table(Some(columns), cells(value, columns), columns.len())),
    }
    Ok(())
}

/// A table printed a row at a time (`watch`): the widths are set up front, so rows printed
/// apart still line up; a longer cell is shown whole and widens its own row only (wrapping
/// would split a row over lines, truncating would hide an id).
pub struct Stream {
    columns: &'static [Column],
    widths: Vec<u16>,
}

impl Stream {
    /// `widths` are the content widths of every column but the last, which takes what it needs.
    pub fn new(columns: &'static [Column], widths: &[u16]) -> Self {
        Self { columns, widths: widths.to_vec() }
    }

    fn render(&self, headers: Option<&[Column]>, rows: Vec<Vec<String>>) {
        emit(&self.table(headers, rows));
    }

    fn table(&self, headers: Option<&[Column]>, rows: Vec<Vec<String>>) -> Table {
        let n = self.columns.len();
        let mut table = table(headers, rows, n);
        for (i, column) in table.column_iter_mut().enumerate() {
            if let Some(w) = self.widths.get(i).filter(|_| i + 1 < n) {
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(w + GAP)));
            }
        }
        table
    }

    pub fn header(&self) {
        self.render(Some(self.columns), Vec::new());
    }

    pub fn row(&self, value: &Value) {
        self.render(None, cells(value, self.columns));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    const COLUMNS: &[Column] = &[("ID", "id"), ("N", "n"), ("NOTE", "note")];

    /// Where each column starts on a line, from the header's column starts.
    fn starts(header: &str) -> Vec<usize> {
        COLUMNS.iter().map(|(h, _)| header.find(h).unwrap()).collect()
    }

    #[test]
    fn tables_align_columns_whatever_the_widths() {
        let value = json!([
            {"id": "a", "n": 12345, "note": "x"},
            {"id": "a-much-longer-id", "n": 1, "note": "y"},
        ]);
        let out = lines(&table(Some(COLUMNS), cells(&value, COLUMNS), COLUMNS.len()));
        assert_eq!(out.len(), 3, "{out:?}");
        let at = starts(&out[0]);
        assert_eq!(at[0], 0);
        for line in &out[1..] {
            for (i, start) in at.iter().enumerate().skip(1) {
                assert_eq!(&line[start - GAP as usize..*start], "  ", "{i}: {out:?}");
                assert_ne!(&line[*start..start + 1], " ", "{i}: {out:?}");
            }
        }
    }

    #[test]
    fn streamed_rows_line_up_with_their_header() {
        let stream = Stream::new(COLUMNS, &[6, 5]);
        let header = lines(&stream.table(Some(COLUMNS), Vec::new()));
        assert_eq!(header.len(), 1, "{header:?}");
        let at = starts(&header[0]);
        assert_eq!(at, [0, 8, 15]);
        for v in [
            json!({"id": "a", "n": 1, "note": "x"}),
            json!({"id": "abcdef", "n": 12345, "note": "y"}),
        ] {
            let row = lines(&stream.table(None, cells(&v, COLUMNS)));
            assert_eq!(row.len(), 1, "{row:?}");
            assert_eq!(row[0].find(v["note"].as_str().unwrap()), Some(15), "{row:?}");
            assert_eq!(row[0].find(&v["n"].to_string()), Some(8), "{row:?}");
        }
    }
}
