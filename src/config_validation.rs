//! Configuration checks serde cannot make: addresses, URLs, bounds and keys
//! required together, run once by `Config::load`.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::{Config, ConfigError, StorageKind, TransferMode, is_origin};

/// Characters of `metrics_token`, at least.
const MIN_METRICS_TOKEN: usize = 16;

impl Config {
    /// Checks what serde cannot: addresses, URLs, and keys required together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new("public_url", "must start with http:// or https://"));
        }
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::new("database_url", "must start with sqlite:, postgres:// or postgresql://"));
            }
        }
        if let Some(url) = &self.redis_url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::new("redis_url", "must start with redis:// or rediss://"));
            }
        }
        if self.cache_max_entries == 0 {
            return Err(ConfigError::new("cache_max_entries", "must be at least 1"));
        }
        if self.cache_max_mib == 0 {
            return Err(ConfigError::new("cache_max_mib", "must be at least 1"));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        if self.database_acquire_timeout.is_zero() {
            return Err(ConfigError::new("database_acquire_timeout", "must be greater than zero"));
        }
        if !(5..=512).contains(&self.s3_part_size_mib) {
            return Err(ConfigError::new("s3_part_size_mib", "must be between 5 and 512"));
        }
        if self.s3_single_put_max_mib > 5 * 1024 {
            return Err(ConfigError::new("s3_single_put_max_mib", "S3 takes at most 5120 MiB in one PutObject"));
        }
        if !(1..=16).contains(&self.s3_parts_in_flight) {
            return Err(ConfigError::new("s3_parts_in_flight", "must be between 1 and 16"));
        }
        if self.max_json_bytes < 1024 {
            return Err(ConfigError::new("max_json_bytes", "must be at least 1024"));
        }
        if self.storage == StorageKind::S3 {
            self.validate_s3()?;
        }
        self.validate_durations()?;
        self.validate_http()?;
        self.validate_identity()
    }

    /// Durations added to or taken from the clock stay within a century (a
    /// longer one would overflow the date arithmetic), and the shutdown leaves
    /// time for the last audit events to be written.
    fn validate_durations(&self) -> Result<(), ConfigError> {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let clock_offsets = [
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("lockout_window", self.lockout_window),
            ("lockout_duration", self.lockout_duration),
            ("audit_min_retention", self.audit_min_retention),
            ("upload_ttl", self.upload_ttl),
            ("reconcile_grace", self.reconcile_grace),
        ];
        if let Some((key, _)) = clock_offsets.iter().find(|(_, value)| *value > CENTURY) {
            return Err(ConfigError::new(key, "must be at most 100 years"));
        }
        if self.shutdown_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "shutdown_timeout",
                "must be at least 1s (the last audit events are written then)",
            ));
        }
        // `/metrics` has no rate limit: the token itself must resist guessing.
        if self.metrics_token.as_ref().is_some_and(|token| token.expose_secret().chars().count() < MIN_METRICS_TOKEN) {
            return Err(ConfigError::new(
                "metrics_token",
                format!("must be at least {MIN_METRICS_TOKEN} characters (leave it unset to serve /metrics openly)"),
            ));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        if let Some(origin) = &self.content_origin
            && !is_origin(origin)
        {
            return Err(ConfigError::new("content_origin", "must be an origin like https://content.example"));
        }
        if let Some(bad) = self.cors_origins().into_iter().find(|origin| !is_origin(origin)) {
            return Err(ConfigError::new(
                "cors_allowed_origins",
                format!("{bad:?} is not an origin (scheme://host[:port])"),
            ));
        }
        if self.client_request_timeout.is_zero() {
            return Err(ConfigError::new("client_request_timeout", "must be greater than zero"));
        }
        if self.client_body_timeout.is_zero() {
            return Err(ConfigError::new("client_body_timeout", "must be greater than zero"));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(ConfigError::new("max_header_bytes", "must be between 1024 and 1048576"));
        }
        Ok(())
    }

    fn validate_identity(&self) -> Result<(), ConfigError> {
        if self.access_token_ttl.is_zero() || self.access_token_ttl > Duration::from_secs(15 * 60) {
            return Err(ConfigError::new("access_token_ttl", "must be between 1s and 15m"));
        }
        if self.refresh_token_ttl < self.access_token_ttl {
            return Err(ConfigError::new("refresh_token_ttl", "must be at least access_token_ttl"));
        }
        // OWASP's minimum for argon2id: m = 19 MiB, t = 2, p = 1.
        if self.argon2_memory_kib < 19 * 1024 {
            return Err(ConfigError::new("argon2_memory_kib", "must be at least 19456 (OWASP minimum)"));
        }
        if self.argon2_iterations < 2 {
            return Err(ConfigError::new("argon2_iterations", "must be at least 2 (OWASP minimum)"));
        }
        if self.argon2_parallelism == 0 {
            return Err(ConfigError::new("argon2_parallelism", "must be at least 1"));
        }
        if self.lockout_threshold == 0 || self.ip_lockout_threshold < self.lockout_threshold {
            return Err(ConfigError::new(
                "ip_lockout_threshold",
                "lockout_threshold must be at least 1 and ip_lockout_threshold at least lockout_threshold",
            ));
        }
        if self.lockout_window.is_zero() || self.lockout_duration.is_zero() {
            return Err(ConfigError::new("lockout_window", "lockout_window and lockout_duration must be positive"));
        }
        if self.max_open_uploads == 0 {
            return Err(ConfigError::new("max_open_uploads", "must be at least 1"));
        }
        if !(5..=5 * 1024).contains(&self.upload_part_size_mib) {
            return Err(ConfigError::new("upload_part_size_mib", "must be between 5 and 5120"));
        }
        if self.transfer_mode == TransferMode::Direct && self.storage != StorageKind::S3 {
            return Err(ConfigError::new("transfer_mode", "\"direct\" needs storage = \"s3\""));
        }
        if self.reconcile_interval < Duration::from_secs(1) || self.reconcile_grace < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "reconcile_interval",
                "reconcile_interval and reconcile_grace must be at least 1s",
            ));
        }
        if !(1..=1_000_000_000).contains(&self.thumbnail_max_pixels) || !(1..=65_535).contains(&self.thumbnail_max_side)
        {
            return Err(ConfigError::new(
                "thumbnail_max_pixels",
                "thumbnail_max_pixels must be 1..=1e9 and thumbnail_max_side 1..=65535",
            ));
        }
        if self.thumbnail_timeout < Duration::from_millis(100) {
            return Err(ConfigError::new("thumbnail_timeout", "must be at least 100ms"));
        }
        if self.job_poll_interval < Duration::from_millis(100) {
            return Err(ConfigError::new("job_poll_interval", "must be at least 100ms"));
        }
        if self.lifecycle_interval < Duration::from_secs(1) {
            return Err(ConfigError::new("lifecycle_interval", "must be at least 1s"));
        }
        if self.audit_checkpoint_interval < Duration::from_secs(1) {
            return Err(ConfigError::new("audit_checkpoint_interval", "must be at least 1s"));
        }
        for (name, key) in [
            ("master_key", &self.master_key),
            ("presign_key", &self.presign_key),
            ("presign_previous_key", &self.presign_previous_key),
        ] {
            if let Some(key) = key
                && crate::keys::decode_master_key(key.expose_secret()).is_none()
            {
                return Err(ConfigError::new(name, "must be 32 bytes, base64 or hex encoded"));
            }
        }
        if self.presign_previous_key.is_some() != self.presign_previous_key_until.is_some() {
            return Err(ConfigError::new(
                "presign_previous_key_until",
                "set together with presign_previous_key (the end of the rotation grace period)",
            ));
        }
        Ok(())
    }

    fn validate_s3(&self) -> Result<(), ConfigError> {
        let required = |key: &str, value: Option<&str>| match value {
            Some(v) if !v.trim().is_empty() => Ok(()),
            _ => Err(ConfigError::new(key, "required when storage = \"s3\"")),
        };
        required("s3_bucket", self.s3_bucket.as_deref())?;
        required("s3_access_key_id", self.s3_access_key_id.as_deref())?;
        required("s3_secret_access_key", self.s3_secret_access_key.as_ref().map(ExposeSecret::expose_secret))?;
        if let Some(endpoint) = &self.s3_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::new("s3_endpoint", "must start with http:// or https://"));
        }
        if self.s3_prefix.starts_with('/') {
            return Err(ConfigError::new("s3_prefix", "must not start with '/'"));
        }
        Ok(())
    }
}
