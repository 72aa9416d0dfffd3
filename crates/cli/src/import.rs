//! Bulk import of leads, companies and events from CSV exports, mapped by a small YAML file
//! (HubSpot and Salesforce mappings ship in `examples/mappings/`). Streamed in batches, with a
//! progress bar (rate and ETA), a checkpoint after every acknowledged batch so an interrupted
//! import resumes where it stopped (ingestion is idempotent, so a replayed batch never counts
//! twice), and a rejects file naming the line, the field and the reason of every bad row.
//!
//! `mapping.rs` reads a mapping and turns rows into items, `clock.rs` reads times,
//! `checkpoint.rs` saves and checks progress; this file runs the import.

mod checkpoint;
mod clock;
mod mapping;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use kelvin_proto::v1 as pb;

pub use checkpoint::Checkpoint;
use checkpoint::{check_resumable, checkpoint_path, file_sha256, save};
pub use mapping::Mapping;
use mapping::{Resolved, item};

/// An item ready to send.
pub enum Item {
    Event(pb::EventInput),
    Lead(pb::LeadInput),
    Company(pb::CompanyInput),
}

/// Options of one import.
pub struct Options {
    pub tenant: String,
    pub file: PathBuf,
    pub mapping: Mapping,
    pub rejects: PathBuf,
    pub batch: usize,
    pub resume: bool,
    /// Stop after this many rows in this run (resume later).
    pub max_rows: Option<u64>,
}

/// Runs an import; returns the totals (including earlier runs when resuming), the warnings of
/// this run (as JSON rows, see `warning_json`) and the seconds this run took.
pub async fn run(
    opts: Options,
    mut send: impl FnMut(
        Vec<Item>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<pb::ItemResult>>> + Send>,
    >,
) -> Result<(Checkpoint, Vec<serde_json::Value>, f64)> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let checkpoint_file = checkpoint_path(&opts.file);
    let fresh = Checkpoint {
        tenant: opts.tenant.clone(),
        file_sha256: file_sha256(&opts.file)?,
        mapping: opts.mapping.source.clone(),
        mapping_sha256: opts.mapping.sha256.clone(),
        ..Checkpoint::default()
    };
    let mut done = if opts.resume && checkpoint_file.exists() {
        let saved: Checkpoint = serde_json::from_slice(&std::fs::read(&checkpoint_file)?)
            .with_context(|| format!("unreadable checkpoint {}", checkpoint_file.display()))?;
        check_resumable(&saved, &fresh, &checkpoint_file)?;
        saved
    } else {
        fresh
    };
    let size = std::fs::metadata(&opts.file)
        .with_context(|| format!("cannot read {}", opts.file.display()))?
        .len();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&opts.file)?;
    let headers = reader.headers()?.clone();
    let resolved = Resolved::new(&opts.mapping, &headers)?;
    let mut rejects = std::fs::OpenOptions::new()
        .create(true)
        .append(opts.resume)
        .write(true)
        .truncate(!opts.resume)
        .open(&opts.rejects)
        .with_context(|| format!("cannot write {}", opts.rejects.display()))?;
    if !opts.resume || done.rows == 0 {
        writeln!(rejects, "line,field,reason")?;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut record = csv::StringRecord::new();
    let mut row_number: u64 = 0;
    let mut this_run: u64 = 0;
    loop {
        let mut batch: Vec<(u64, Item)> = Vec::with_capacity(opts.batch);
        let mut batch_rejects: Vec<(u64, String, String)> = Vec::new();
        let mut end = false;
        while batch.len() < opts.batch.max(1) {
            if opts.max_rows.is_some_and(|m| this_run >= m) || !reader.read_record(&mut record)? {
                end = true;
                break;
            }
            row_number += 1;
            if row_number <= done.rows {
                continue;
            }
            this_run += 1;
            // Line numbers count the header as line 1.
            let line = row_number + 1;
            match item(&resolved, &record) {
                Ok(i) => batch.push((line, i)),
                Err((field, reason)) => batch_rejects.push((line, field, reason)),
            }
        }
        let handled = batch.len() as u64 + batch_rejects.len() as u64;
        if !batch.is_empty() {
            let (lines, items): (Vec<u64>, Vec<Item>) = batch.into_iter().unzip();
            let results = send(items).await?;
            for (line, r) in lines.into_iter().zip(results) {
                if !r.warnings.is_empty() {
                    done.warned += 1;
                    warnings
                        .extend(r.warnings.iter().map(|w| crate::commands::warning_json(line, w)));
                }
                match pb::ItemStatus::try_from(r.status) {
                    Ok(pb::ItemStatus::Accepted) => done.accepted += 1,
                    Ok(pb::ItemStatus::Duplicate) => done.duplicates += 1,
                    // The server names the field by batch position (`events[3].time`); in the
                    // file, the line says which row: keep the field name alone.
                    _ => {
                        let field = crate::commands::field_in_item(&r.field).to_owned();
                        batch_rejects.push((line, field, r.reason));
                    }
                }
            }
        }
        batch_rejects.sort();
        for (line, field, reason) in &batch_rejects {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([line.to_string().as_str(), field, reason])?;
            rejects.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        }
        done.rejected += batch_rejects.len() as u64;
        done.rows += handled;
        rejects.flush()?;
        save(&checkpoint_file, &done)?;
        bar.set_position(reader.position().byte());
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{} rows, {:.0} rows/s", done.rows, this_run as f64 / secs));
        if end {
            break;
        }
    }
    bar.finish_and_clear();
    let complete = opts.max_rows.is_none_or(|m| this_run < m);
    if complete {
        // Finished: a later import of the same file starts from scratch.
        let _ = std::fs::remove_file(&checkpoint_file);
    }
    Ok((done, warnings, started.elapsed().as_secs_f64()))
}
