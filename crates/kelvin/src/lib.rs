//! The all-in-one Kelvin: every service in one process, on one port. The embedded default runs
//! on SQLite in a data directory with the in-process cache; tests use it too.

pub mod demo;

use kelvin_config::Config;
use kelvin_server::MountFn;

/// Every service of Kelvin.
pub const ALL_SERVICES: &[MountFn] =
    &[kelvin_rules::mount, kelvin_ingest::mount, kelvin_scoring::mount];

/// Defaults of the embedded server: migrate on start, generate the signing key on first start.
pub fn embedded_defaults() -> Config {
    let mut config = Config { migrate_on_start: true, ..Config::default() };
    config.auth.generate_missing_key = true;
    config
}
