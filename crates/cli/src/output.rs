//! Output as a table (default), JSON or YAML. Commands build JSON values; this module renders
//! them.

use anyhow::Result;
use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// A column of a table: its header and the JSON key it shows.
pub type Column = (&'static str, &'static str);

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

/// Prints `value` (an object or an array of objects) in `format`; tables show `columns`.
pub fn print(format: Format, value: &Value, columns: &[Column]) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        Format::Table => {
            let rows: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|(_, k)| cell(r.get(*k))).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, (h, _))| {
                    table.iter().map(|r| r[i].chars().count()).chain([h.len()]).max().unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!("{}", line(columns.iter().map(|(h, _)| (*h).to_owned()).collect()));
            for row in table {
                println!("{}", line(row));
            }
        }
    }
    Ok(())
}
