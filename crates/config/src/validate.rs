//! Validation of a loaded configuration: the rules serde cannot state (non-empty issuer,
//! secret lengths, TLS files in pairs, positive limits). Each message names the setting.

use crate::{Config, Error, Result, SigningAlgorithm};

impl Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.auth.issuer.is_empty() {
            return Err(Error::Invalid("auth.issuer must not be empty".into()));
        }
        if self.auth.audience.is_empty() {
            return Err(Error::Invalid("auth.audience must not be empty".into()));
        }
        if self.auth.signing_algorithm == SigningAlgorithm::HS256 {
            match &self.auth.hs256_secret {
                Some(s) if s.expose().len() >= 32 => {}
                _ => {
                    return Err(Error::Invalid(
                        "auth.hs256_secret must hold at least 32 bytes when auth.signing_algorithm is HS256"
                            .into(),
                    ));
                }
            }
        }
        if let Some(ext) = &self.auth.external
            && ext.jwks_file.is_none()
            && ext.jwks_url.is_none()
        {
            return Err(Error::Invalid("auth.external needs jwks_file or jwks_url".into()));
        }
        if let Some(ext) = &self.auth.external
            && ext.jwks_refresh_seconds == 0
        {
            return Err(Error::Invalid(
                "auth.external.jwks_refresh_seconds must be positive".into(),
            ));
        }
        if let Some(key) = &self.auth.audit_hmac_key
            && key.expose().len() < 32
        {
            return Err(Error::Invalid("auth.audit_hmac_key must hold at least 32 bytes".into()));
        }
        let tls = &self.server.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(Error::Invalid(
                    "server.tls.key_file must be set with server.tls.cert_file".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Invalid(
                    "server.tls.cert_file must be set with server.tls.key_file".into(),
                ));
            }
            (None, None) if tls.client_ca_file.is_some() => {
                return Err(Error::Invalid(
                    "server.tls.client_ca_file needs server.tls.cert_file and server.tls.key_file"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.server.max_concurrent_calls == 0 || self.server.max_concurrent_calls_per_key == 0 {
            return Err(Error::Invalid(
                "server.max_concurrent_calls and server.max_concurrent_calls_per_key must be positive"
                    .into(),
            ));
        }
        if self.scoring.batch_size == 0
            || self.scoring.poll_interval_ms == 0
            || self.scoring.rebalance_interval_ms == 0
        {
            return Err(Error::Invalid("scoring batch size and intervals must be positive".into()));
        }
        if self.scoring.max_streams_per_tenant == 0 || self.scoring.max_streams_per_key == 0 {
            return Err(Error::Invalid("scoring stream limits must be positive".into()));
        }
        if self.ingest.max_batch == 0 || self.ingest.events_per_second == 0 {
            return Err(Error::Invalid("ingest limits must be positive".into()));
        }
        if self.server.max_request_bytes == 0 || self.server.max_response_bytes == 0 {
            return Err(Error::Invalid("server message size limits must be positive".into()));
        }
        let l = &self.limits;
        if l.max_spec_bytes == 0
            || l.max_simulation_work == 0
            || l.evaluation_threads == 0
            || l.expensive_calls_per_tenant == 0
            || l.expensive_calls_per_api_key == 0
        {
            return Err(Error::Invalid("limits must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Secret;

    #[test]
    fn hs256_requires_a_long_secret() {
        let mut config = Config::default();
        config.auth.signing_algorithm = SigningAlgorithm::HS256;
        config.auth.hs256_secret = Some(Secret::new("short"));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("auth.hs256_secret"), "{err}");
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let mut config = Config::default();
        config.server.tls.key_file = Some("/tls/tls.key".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("server.tls.cert_file"), "{err}");
        let mut config = Config::default();
        config.server.tls.client_ca_file = Some("/tls/ca.crt".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("server.tls.client_ca_file"), "{err}");
        assert!(!Config::default().server.tls.enabled());
    }
}
