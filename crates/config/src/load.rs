//! Loading: the layers merged in order (defaults → TOML file → `KELVIN_*` environment →
//! flags), which environment variables are configuration, and unknown keys reported with the
//! file or the variable they came from.
//!
//! The rule for variables: `KELVIN_<KEY>` is configuration when its first segment (up to the
//! first `__`) is a top-level key (`KELVIN_LISTEN`, `KELVIN_SCORING__BATCH_SIZE`); then every key
//! under it must exist. Other `KELVIN_*` names belong to someone else (kelvinctl's
//! `KELVIN_TOKEN`, `--config`'s `KELVIN_CONFIG`, the tests' `KELVIN_TEST_*`) and are ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Source};

use crate::{Config, Error, Overrides, Result};

/// Prefix of every configuration variable.
const ENV_PREFIX: &str = "KELVIN_";

/// Separates nested keys in a variable's name: `KELVIN_CACHE__REDIS_URL` is `cache.redis_url`.
const ENV_SEPARATOR: &str = "__";

/// The top-level keys of [`Config`]: a `KELVIN_*` variable is configuration when its key
/// starts with one of them (a unit test keeps this list equal to the struct's fields).
const TOP_LEVEL_KEYS: [&str; 12] = [
    "listen",
    "data_dir",
    "database_url",
    "migrate_on_start",
    "cache",
    "auth",
    "server",
    "telemetry",
    "tenancy",
    "ingest",
    "scoring",
    "limits",
];

/// Where an unknown key was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The TOML config file.
    File(PathBuf),
    /// A `KELVIN_*` environment variable, by its name.
    Env(String),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "in config file `{}`", path.display()),
            Self::Env(name) => write!(f, "set by environment variable `{name}`"),
        }
    }
}

impl Config {
    /// Loads defaults → `file` (when given) → `KELVIN_*` env → `overrides`, with `base` as the
    /// defaults (each binary has its own, e.g. the embedded server generates missing keys).
    pub fn load(base: Config, file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(base));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Invalid(format!(
                    "config file `{}` does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|key| is_configuration(&key_path(key.as_str())))
            .split(ENV_SEPARATOR);
        figment = figment.merge(env).merge(Serialized::defaults(overrides));
        let config: Config =
            figment.extract().map_err(|e| unknown_key(&e).unwrap_or_else(|| e.into()))?;
        config.validate()?;
        Ok(config)
    }
}

/// The key path figment reads from a variable name without its prefix: `__` nests (so does a
/// `.`, which figment splits on too), case is ignored (`CACHE__REDIS_URL` → `cache.redis_url`).
fn key_path(name: &str) -> String {
    name.trim().replace(ENV_SEPARATOR, ".").to_ascii_lowercase()
}

/// Whether a key path read from the environment is configuration: its first segment is a
/// top-level key.
fn is_configuration(path: &str) -> bool {
    let first = path.split('.').next().unwrap_or_default();
    TOP_LEVEL_KEYS.contains(&first)
}

/// The configuration variable that set `path`: the variable of that key, of a table holding it
/// (`KELVIN_INGEST={max_batch=5}`) or of a key inside it (`KELVIN_CACHE__REDIS__URL` for the
/// unknown `cache.redis`); the longest match among the variables set now.
fn variable_setting(path: &str) -> Option<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| {
            let name = name.to_string_lossy().into_owned();
            let prefix = name.get(..ENV_PREFIX.len())?;
            if !prefix.eq_ignore_ascii_case(ENV_PREFIX) {
                return None;
            }
            let key = key_path(&name[ENV_PREFIX.len()..]);
            // The variable sets the key, a table holding it, or something inside it.
            let sets = path == key
                || path.starts_with(&format!("{key}."))
                || key.starts_with(&format!("{path}."));
            (sets && is_configuration(&key)).then_some((key.len(), name))
        })
        .max()
        .map(|(_, name)| name)
}

/// A clear error for a key no setting has, naming the file or variable it came from (figment
/// tags every value with its source); `None` for other errors.
fn unknown_key(error: &figment::Error) -> Option<Error> {
    let Kind::UnknownField(_, expected) = &error.kind else { return None };
    let key = error.path.join(".");
    let origin = match error.metadata.as_ref().and_then(|md| md.source.as_ref()) {
        Some(Source::File(path)) => KeyOrigin::File(path.clone()),
        _ => KeyOrigin::Env(variable_setting(&key)?),
    };
    let expected = expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    Some(Error::UnknownKey { key, origin, expected })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::result_large_err)]
    use super::*;
    use crate::{ExternalIssuer, LimitsSettings};

    #[test]
    fn top_level_keys_are_the_fields_of_config() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut listed = TOP_LEVEL_KEYS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(fields, listed);
    }

    #[test]
    fn layers_apply_in_order_and_secrets_are_redacted() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "kelvin.toml",
                r#"
                listen = "127.0.0.1:6000"
                database_url = "postgres://file@db/kelvin"
                [cache]
                key_prefix = "from-file"
                "#,
            )?;
            jail.set_env("KELVIN_CACHE__KEY_PREFIX", "from-env");
            jail.set_env("KELVIN_CACHE__REDIS_URL", "redis://:hunter2@cache:6379");
            jail.set_env("KELVIN_TEST_BACKEND", "postgres");
            let overrides = Overrides {
                database_url: Some("postgres://flag:s3cret@db/kelvin".into()),
                ..Overrides::default()
            };
            let config =
                Config::load(Config::default(), Some(Path::new("kelvin.toml")), &overrides)
                    .unwrap();
            assert_eq!(config.listen.port(), 6000);
            assert_eq!(config.cache.key_prefix, "from-env");
            assert_eq!(config.effective_database_url(), "postgres://flag:s3cret@db/kelvin");
            let dump = config.dump();
            assert!(!dump.contains("s3cret"), "{dump}");
            assert!(!dump.contains("hunter2"), "{dump}");
            assert!(dump.contains("[redacted]"));
            Ok(())
        });
    }

    #[test]
    fn key_settings_come_from_the_environment_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KELVIN_AUTH__EXTERNAL__ISSUER", "https://idp.example");
            jail.set_env("KELVIN_AUTH__EXTERNAL__JWKS_URL", "https://idp.example/jwks");
            let config = Config::load(Config::default(), None, &Overrides::default()).unwrap();
            let external = config.auth.external.unwrap();
            assert_eq!(
                (external.jwks_refresh_seconds, external.jwks_unknown_kid_refresh_seconds),
                (300, 30)
            );
            jail.set_env("KELVIN_AUTH__EXTERNAL__JWKS_REFRESH_SECONDS", "0");
            let err = Config::load(Config::default(), None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("jwks_refresh_seconds"), "{err}");
            jail.set_env("KELVIN_AUTH__EXTERNAL__JWKS_REFRESH_SECONDS", "60");
            jail.set_env("KELVIN_AUTH__AUDIT_HMAC_KEY", "short");
            let err = Config::load(Config::default(), None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("auth.audit_hmac_key"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn limits_come_from_the_environment_and_must_be_positive() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KELVIN_LIMITS__EXPENSIVE_CALLS_PER_TENANT", "5");
            let config = Config::load(Config::default(), None, &Overrides::default()).unwrap();
            assert_eq!(config.limits.expensive_calls_per_tenant, 5);
            assert_eq!(config.limits.max_spec_bytes, LimitsSettings::default().max_spec_bytes);
            jail.set_env("KELVIN_LIMITS__MAX_SIMULATION_WORK", "0");
            let err = Config::load(Config::default(), None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("limits"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tls_needs_both_files_and_comes_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KELVIN_SERVER__TLS__CERT_FILE", "/tls/tls.crt");
            let err = Config::load(Config::default(), None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("server.tls.key_file"), "{err}");
            jail.set_env("KELVIN_SERVER__TLS__KEY_FILE", "/tls/tls.key");
            let config = Config::load(Config::default(), None, &Overrides::default()).unwrap();
            assert!(config.server.tls.enabled());
            assert_eq!(config.server.tls.key_file.as_deref(), Some(Path::new("/tls/tls.key")));
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load(
            Config::default(),
            Some(Path::new("/nonexistent/kelvin.toml")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    /// The error text of loading `kelvin.toml` holding `toml` in `jail`, or why there is none.
    fn file_error(jail: &mut figment::Jail, toml: &str) -> figment::error::Result<String> {
        jail.create_file("kelvin.toml", toml)?;
        let loaded =
            Config::load(Config::default(), Some(Path::new("kelvin.toml")), &Overrides::default());
        match loaded {
            Ok(_) => Ok(format!("no error: {toml} was accepted")),
            Err(err) => Ok(err.to_string()),
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused_naming_the_key_and_the_file() {
        let cases = [
            ("migrate_on_strat = true", "migrate_on_strat"),
            ("[scorng]\nbatch_size = 10", "scorng"),
            ("[cache]\nkeyprefix = \"x\"", "cache.keyprefix"),
            ("[auth]\nissuer = \"me\"\nsigning_algo = \"HS256\"", "auth.signing_algo"),
            (
                "[auth.external]\nissuer = \"i\"\njwks_url = \"u\"\njwks_refresh = 5",
                "auth.external.jwks_refresh",
            ),
            ("[server]\nmax_request_byte = 1", "server.max_request_byte"),
            ("[server.tls]\ncert = \"c.pem\"", "server.tls.cert"),
            ("[telemetry]\nlog_level = \"debug\"", "telemetry.log_level"),
            ("[tenancy]\npurge_after_days = 3", "tenancy.purge_after_days"),
            ("[ingest]\nmax_batches = 10", "ingest.max_batches"),
            ("[scoring]\nbatchsize = 10", "scoring.batchsize"),
            ("[limits]\nmax_spec_byte = 10", "limits.max_spec_byte"),
        ];
        figment::Jail::expect_with(|jail| {
            for (toml, key) in cases {
                let err = file_error(jail, toml)?;
                assert!(err.contains(&format!("unknown key `{key}`")), "{toml}: {err}");
                assert!(
                    err.contains("config file") && err.contains("kelvin.toml"),
                    "{toml}: {err}"
                );
            }
            // The message lists what the section takes, so the typo is easy to fix.
            let err = file_error(jail, "[scoring]\nbatchsize = 10")?;
            assert!(err.contains("`batch_size`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_of_known_sections_in_the_environment_are_refused_naming_the_variable() {
        let cases = [
            ("KELVIN_SCORING__BATCHSIZE", "10", "scoring.batchsize"),
            ("KELVIN_CACHE__KEYPREFIX", "x", "cache.keyprefix"),
            ("KELVIN_AUTH__EXTERNAL__JWKS_URLS", "https://idp/jwks", "auth.external.jwks_urls"),
            ("KELVIN_SERVER__TLS__CERT", "/tls/tls.crt", "server.tls.cert"),
            ("KELVIN_TELEMETRY__LOG_LEVEL", "debug", "telemetry.log_level"),
            ("KELVIN_LIMITS__EVALUATION_THREAD", "2", "limits.evaluation_thread"),
            // A whole section in one variable (figment reads `{key = value}` as a table).
            ("KELVIN_INGEST", "{max_batches = 5}", "ingest.max_batches"),
            // One `__` too many: `cache` has no table `redis`.
            ("KELVIN_CACHE__REDIS__URL", "redis://cache:6379", "cache.redis"),
        ];
        for (name, value, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.set_env(name, value);
                let err = match Config::load(Config::default(), None, &Overrides::default()) {
                    Ok(_) => format!("no error: {name} was accepted"),
                    Err(err) => err.to_string(),
                };
                assert!(err.contains(&format!("unknown key `{key}`")), "{name}: {err}");
                assert!(err.contains(&format!("environment variable `{name}`")), "{name}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn kelvin_variables_that_are_not_configuration_are_left_alone() {
        figment::Jail::expect_with(|jail| {
            let before = Config::load(Config::default(), None, &Overrides::default()).unwrap();
            // kelvinctl's, the test harness's and the benches' own variables.
            for name in [
                "KELVIN_CONFIG",
                "KELVIN_ENDPOINT",
                "KELVIN_TOKEN",
                "KELVIN_CA_FILE",
                "KELVIN_TEST_BACKEND",
                "KELVIN_TEST_DATABASE_URL",
                "KELVIN_BENCH_BIN_DIR",
                "KELVIN_REPO_ROOT",
                "KELVIN_SOMETHING_ELSE__ENTIRELY",
                // One `_` where `__` was meant names no section: not configuration either.
                "KELVIN_SCORING_BATCH_SIZE",
            ] {
                jail.set_env(name, "7");
            }
            let config = Config::load(Config::default(), None, &Overrides::default()).unwrap();
            assert_eq!(config, before);
            Ok(())
        });
    }

    /// `--dump-config` writes a valid config file: every key it writes is one the loader knows.
    #[test]
    fn a_dumped_configuration_loads_back() {
        let mut config = Config::default();
        config.auth.external = Some(ExternalIssuer {
            issuer: "https://idp.example".into(),
            audience: Some("kelvin-api".into()),
            jwks_file: None,
            jwks_url: Some("https://idp.example/jwks".into()),
            jwks_refresh_seconds: 120,
            jwks_unknown_kid_refresh_seconds: 10,
        });
        config.server.tls.cert_file = Some("/tls/tls.crt".into());
        config.server.tls.key_file = Some("/tls/tls.key".into());
        config.telemetry.metrics_listen = Some("127.0.0.1:9464".parse().unwrap());
        figment::Jail::expect_with(|jail| {
            jail.create_file("dumped.toml", &config.dump())?;
            let loaded = Config::load(
                Config::default(),
                Some(Path::new("dumped.toml")),
                &Overrides::default(),
            )
            .unwrap();
            assert_eq!(loaded, config);
            Ok(())
        });
    }

    /// Every `KELVIN_*` name in the Helm chart (templates, values, CI values) is a key of the
    /// configuration: the chart cannot ship a variable every pod refuses, nor one ignored
    /// because it is not configuration at all.
    #[test]
    fn the_helm_chart_sets_only_known_keys() {
        let mut names = std::collections::BTreeSet::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/kelvin")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    names.extend(kelvin_names(&std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        assert!(names.len() > 20 && names.contains("KELVIN_CACHE__REDIS_URL"), "{names:?}");
        for name in names {
            let path = key_path(&name[ENV_PREFIX.len()..]);
            assert!(is_configuration(&path), "the chart sets {name}, which is not configuration");
            figment::Jail::expect_with(|jail| {
                // Any value: an unknown key is refused before its value is read.
                jail.set_env(&name, "1");
                let loaded = Config::load(Config::default(), None, &Overrides::default());
                assert!(
                    !matches!(loaded, Err(Error::UnknownKey { .. })),
                    "the chart sets {name}: {loaded:?}"
                );
                Ok(())
            });
        }
    }

    /// The `KELVIN_*` names in `text`; prose such as `KELVIN_*` or `KELVIN_AUTH__...` left out.
    fn kelvin_names(text: &str) -> Vec<String> {
        text.match_indices(ENV_PREFIX)
            .filter_map(|(at, _)| {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.ends_with('_')).then_some(name)
            })
            .collect()
    }
}
