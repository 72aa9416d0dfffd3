//! `kelvinctl watch`: a tenant's score changes, printed live as they arrive.

use anyhow::Result;
use kelvin_proto::v1 as pb;

use super::Kelvin;
use crate::WatchArgs;
use crate::output::{self, Format};
use crate::resources as res;

const WATCH_COLUMNS: &[output::Column] = &[
    ("CURSOR", "cursor"),
    ("TIME", "time"),
    ("MODEL", "model_id"),
    ("LEAD", "lead_id"),
    ("FROM", "previous_band"),
    ("TO", "band"),
    ("TOTAL", "total"),
    ("CAUSE", "cause"),
];

/// Prints changes as they arrive: one table row, or one JSON/YAML document, per change.
pub(super) async fn watch_cmd(k: &Kelvin, args: WatchArgs, format: Format) -> Result<()> {
    use std::io::Write as _;
    let WatchArgs { tenant, model, all, after, limit } = args;
    let request = pb::WatchScoreChangesRequest {
        tenant_id: tenant,
        after_cursor: after,
        model_id: model,
        band_changes_only: !all,
    };
    let mut stream = k.scoring().watch_score_changes(k.req(request)?).await?.into_inner();
    // A tenant's models each report their own change of a lead: the model column tells them
    // apart.
    let table = output::Stream::new(WATCH_COLUMNS, &[8, 24, 16, 36, 13, 13, 8]);
    if format == Format::Table {
        table.header();
    }
    let mut seen = 0;
    while let Some(message) = stream.message().await? {
        let Some(change) = message.change else { continue };
        let v = res::score_change(change);
        match format {
            Format::Table => table.row(&v),
            Format::Json => println!("{}", serde_json::to_string(&v)?),
            Format::Yaml => print!("---\n{}", serde_saphyr::to_string(&v)?),
        }
        std::io::stdout().flush()?;
        seen += 1;
        if limit.is_some_and(|l| seen >= l) {
            break;
        }
    }
    Ok(())
}
