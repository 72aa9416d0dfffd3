//! `kelvinctl context`: contexts (endpoint, token, CA file) in the local config file; no server
//! is contacted.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::ContextCmd;
use crate::context::{self, ConfigFile, Context};
use crate::output::{self, Format};

/// The canonical path of an existing file, else the path made absolute from here.
fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .with_context(|| format!("cannot resolve {}", path.display()))
}

pub(super) fn context_cmd(
    cmd: &ContextCmd,
    ca_file: Option<&std::path::Path>,
    format: Format,
) -> Result<()> {
    let mut file = ConfigFile::load()?;
    match cmd {
        ContextCmd::Set { name, endpoint, token, token_file } => {
            file.contexts.insert(
                name.clone(),
                Context {
                    endpoint: endpoint.clone(),
                    token: token.clone(),
                    // Absolute, so the context works from any directory.
                    token_file: token_file.as_deref().map(absolute).transpose()?,
                    ca_file: ca_file.map(absolute).transpose()?,
                },
            );
            file.current = Some(name.clone());
            file.save()?;
            eprintln!("context `{name}` saved in {} and made current", context::path().display());
            Ok(())
        }
        ContextCmd::Use { name } => {
            if !file.contexts.contains_key(name) {
                bail!("no context named `{name}`");
            }
            file.current = Some(name.clone());
            file.save()
        }
        ContextCmd::List => {
            let rows: Vec<Value> = file
                .contexts
                .iter()
                .map(|(n, c)| json!({"name": n, "endpoint": c.endpoint, "current": file.current.as_deref() == Some(n.as_str())}))
                .collect();
            output::print(
                format,
                &Value::Array(rows),
                &[("NAME", "name"), ("ENDPOINT", "endpoint"), ("CURRENT", "current")],
            )
        }
    }
}
