//! Configuration: defaults → optional TOML file → `COFFER_*` environment, validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Where object bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Fs,
    S3,
}

/// Human-readable or JSON log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The effective configuration. Every field maps one-to-one to a TOML key and
/// to `COFFER_<KEY>` in the environment (see the README's table).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub database_url: Option<SecretString>,
    pub database_max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub database_acquire_timeout: Duration,
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub redis_url: Option<SecretString>,
    pub cache_namespace: String,
    pub cache_max_entries: u64,
    /// Bytes (in MiB) the in-process cache may hold, keys and values counted.
    pub cache_max_mib: u64,
    pub storage: StorageKind,
    pub fs_root: Option<PathBuf>,
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_bucket: Option<String>,
    pub s3_access_key_id: Option<String>,
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub s3_secret_access_key: Option<SecretString>,
    pub s3_force_path_style: bool,
    pub s3_prefix: String,
    pub s3_part_size_mib: u64,
    pub s3_parts_in_flight: usize,
    /// Each Coffer bucket gets its own backend bucket `{s3_bucket}-b{id}` (created and removed with it).
    pub s3_bucket_per_coffer_bucket: bool,
    pub s3_single_put_max_mib: u64,
    #[serde(with = "humantime_serde")]
    pub s3_connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub s3_operation_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub s3_attempt_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub max_json_bytes: usize,
    pub workers: usize,
    /// Pin each HTTP worker to a CPU of its own (`auto`: when the usable CPUs number the workers).
    pub worker_cpu_pinning: crate::cpu_pinning::CpuPinning,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub readiness_timeout: Duration,
    /// 32 random bytes (base64 or hex) every derived key comes from; generated
    /// into `<data_dir>/master.key` when unset.
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub master_key: Option<SecretString>,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    pub require_mfa_for_admins: bool,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub password_hash_concurrency: usize,
    pub lockout_threshold: u32,
    pub ip_lockout_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub lockout_window: Duration,
    #[serde(with = "humantime_serde")]
    pub lockout_duration: Duration,
    pub trust_forwarded_for: bool,
    pub run_workers: bool,
    #[serde(with = "humantime_serde")]
    pub audit_checkpoint_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub audit_min_retention: Duration,
    pub max_object_bytes: u64,
    pub transfer_mode: TransferMode,
    pub upload_part_size_mib: u64,
    #[serde(with = "humantime_serde")]
    pub upload_ttl: Duration,
    /// Unfinished multipart uploads one user may have at a time.
    pub max_open_uploads: usize,
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub reconcile_grace: Duration,
    /// Threads rendering thumbnails at once; 0 = one per core.
    pub thumbnail_workers: usize,
    pub thumbnail_max_pixels: u64,
    pub thumbnail_max_side: u32,
    /// Larger source images are refused (422) rather than read into memory.
    pub thumbnail_max_source_mib: u64,
    /// Time budget of one render.
    #[serde(with = "humantime_serde")]
    pub thumbnail_timeout: Duration,
    /// In-process thumbnail cache size.
    pub thumbnail_cache_mib: u64,
    /// Requests per minute per client address and per user (0 = unlimited), by route class.
    pub rate_limit_auth_per_minute: u32,
    pub rate_limit_upload_per_minute: u32,
    pub rate_limit_api_per_minute: u32,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub metrics_token: Option<SecretString>,
    /// Whether `/health/ready` fails (503) while the cache is unreachable, rather than reporting it degraded.
    pub cache_required: bool,
    /// Bypass the lookup cache entirely (diagnosis and the B5 benchmark's uncached baseline).
    pub cache_lookups_disabled: bool,
    /// How often idle replicas look for background jobs (thumbnails of new images).
    #[serde(with = "humantime_serde")]
    pub job_poll_interval: Duration,
    /// How often the lifecycle rules run (on one replica at a time).
    #[serde(with = "humantime_serde")]
    pub lifecycle_interval: Duration,
    /// 32 bytes (base64 or hex) signing gateway URLs; derived from the master key when unset.
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub presign_key: Option<SecretString>,
    /// The key being rotated out: URLs it signed keep working until `presign_previous_key_until`.
    #[serde(serialize_with = "redact_secret", deserialize_with = "secret_text")]
    pub presign_previous_key: Option<SecretString>,
    pub presign_previous_key_until: Option<chrono::DateTime<chrono::Utc>>,
    pub allow_direct_transfer: bool,
    #[serde(with = "humantime_serde")]
    pub share_max_expiry: Option<Duration>,
    /// A separate origin (`https://content.example`) for presigned downloads and share links.
    pub content_origin: Option<String>,
    /// `Strict-Transport-Security` max-age, sent when `public_url` is https (0 = never).
    #[serde(with = "humantime_serde")]
    pub hsts_max_age: Duration,
    /// Comma-separated app origins allowed to call the API cross-origin (empty = CORS off).
    pub cors_allowed_origins: String,
    /// Presigned URLs and share links answer CORS requests from any origin.
    pub cors_links_any_origin: bool,
    /// A client must send its whole request head within this time (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// Time to finish closing a connection after the response.
    #[serde(with = "humantime_serde")]
    pub client_disconnect_timeout: Duration,
    /// An upload whose client sends no body bytes for this long is ended
    /// (400, nothing stored); the client, not the backend, sets an upload's pace.
    #[serde(with = "humantime_serde")]
    pub client_body_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Largest request head (request line and headers), in bytes; larger is 431.
    pub max_header_bytes: usize,
}

/// How presigned and part URLs move bytes: through Coffer (audited, revocable)
/// or straight to the S3 backend (no per-request audit, valid until expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    Gateway,
    Direct,
}

/// `count`, or one per core when it is 0.
fn or_one_per_core(count: usize) -> usize {
    match count {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        n => n,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            database_url: None,
            database_max_connections: 16,
            database_acquire_timeout: Duration::from_secs(3),
            redis_url: None,
            cache_namespace: "coffer".into(),
            cache_max_entries: 100_000,
            cache_max_mib: 128,
            storage: StorageKind::Fs,
            fs_root: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_bucket: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_force_path_style: false,
            s3_prefix: String::new(),
            s3_part_size_mib: 8,
            s3_parts_in_flight: 2,
            s3_bucket_per_coffer_bucket: false,
            s3_single_put_max_mib: 5 * 1024,
            s3_connect_timeout: Duration::from_secs(5),
            s3_operation_timeout: Duration::from_secs(300),
            s3_attempt_timeout: Duration::from_secs(120),
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            // A completion listing all 10,000 parts as `GET …/parts` returns them is about 1.2 MB.
            max_json_bytes: 2 * 1024 * 1024,
            workers: 0,
            worker_cpu_pinning: crate::cpu_pinning::CpuPinning::Auto,
            shutdown_timeout: Duration::from_secs(30),
            readiness_timeout: Duration::from_secs(2),
            master_key: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            require_mfa_for_admins: false,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            password_hash_concurrency: 0,
            lockout_threshold: 5,
            ip_lockout_threshold: 50,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
            run_workers: true,
            audit_checkpoint_interval: Duration::from_secs(5 * 60),
            audit_min_retention: Duration::from_secs(365 * 24 * 3600),
            max_object_bytes: 5 * 1024 * 1024 * 1024 * 1024,
            transfer_mode: TransferMode::Gateway,
            upload_part_size_mib: 8,
            upload_ttl: Duration::from_secs(7 * 24 * 3600),
            max_open_uploads: 1000,
            reconcile_interval: Duration::from_secs(10 * 60),
            reconcile_grace: Duration::from_secs(24 * 3600),
            lifecycle_interval: Duration::from_secs(3600),
            job_poll_interval: Duration::from_secs(2),
            rate_limit_auth_per_minute: 60,
            rate_limit_upload_per_minute: 1200,
            rate_limit_api_per_minute: 6000,
            cache_required: false,
            cache_lookups_disabled: false,
            metrics_token: None,
            thumbnail_workers: 0,
            thumbnail_max_pixels: 50_000_000,
            thumbnail_max_side: 16_384,
            thumbnail_max_source_mib: 64,
            thumbnail_timeout: Duration::from_secs(10),
            thumbnail_cache_mib: 64,
            presign_key: None,
            presign_previous_key: None,
            presign_previous_key_until: None,
            allow_direct_transfer: false,
            share_max_expiry: None,
            content_origin: None,
            hsts_max_age: Duration::from_secs(365 * 24 * 3600),
            cors_allowed_origins: String::new(),
            cors_links_any_origin: false,
            client_request_timeout: Duration::from_secs(5),
            client_disconnect_timeout: Duration::from_secs(2),
            client_body_timeout: Duration::from_secs(60),
            keep_alive: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A configuration problem, reported as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self { key: key.to_owned(), problem: problem.into() }
    }
}

/// Environment variables with the `COFFER_` prefix that are not configuration keys.
/// (`skip_ui_build` is read by `build.rs`; `garage_*`, `moto_port` and
/// `deploy_venv` by the test and deploy scripts.)
const NON_CONFIG_ENV: &[&str] = &["config", "skip_ui_build", "moto_port", "deploy_venv"];

impl Config {
    /// Loads defaults, then `file` (if any), then `COFFER_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // No serialized defaults provider: `#[serde(default)]` fills what is unset,
        // so secrets never pass through a serializer.
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new("--config", format!("file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("COFFER_").filter(|key| {
            !key.starts_with("test_") && !key.starts_with("garage_") && !NON_CONFIG_ENV.contains(&key.as_str())
        }));
        let config: Config = figment.extract().map_err(|error| from_figment(&error))?;
        config.validate()?;
        Ok(config)
    }

    /// The configured CORS allow-list, trimmed, without empty entries.
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect()
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind
            .parse()
            .map_err(|_| ConfigError::new("bind", format!("{:?} is not a host:port socket address", self.bind)))
    }

    /// The SQLite file under the data dir unless a database URL is configured.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("coffer.db").display()),
        }
    }

    pub fn effective_thumbnail_workers(&self) -> usize {
        or_one_per_core(self.thumbnail_workers)
    }

    /// HTTP worker threads (actix-web's own default, made explicit for CPU pinning).
    pub fn effective_workers(&self) -> usize {
        or_one_per_core(self.workers)
    }

    pub fn effective_fs_root(&self) -> PathBuf {
        self.fs_root.clone().unwrap_or_else(|| self.data_dir.join("objects"))
    }

    /// Base URL for links handed out to clients (presigned and share URLs).
    pub fn effective_public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// The effective configuration as TOML, secrets and URL passwords redacted.
    pub fn to_redacted_toml(&self) -> String {
        let render = || -> Result<String, String> {
            let mut json = serde_json::to_value(self).map_err(|e| e.to_string())?;
            let map = json.as_object_mut().ok_or("configuration is not a table")?;
            map.retain(|_, value| !value.is_null());
            map.insert("database_url".into(), redact_url_password(&self.effective_database_url()).into());
            if let Some(url) = &self.redis_url {
                map.insert("redis_url".into(), redact_url_password(url.expose_secret()).into());
            }
            let value = toml::Value::try_from(json).map_err(|e| e.to_string())?;
            toml::to_string_pretty(&value).map_err(|e| e.to_string())
        };
        render().unwrap_or_else(|error| format!("# could not render configuration: {error}\n"))
    }
}

/// `scheme://host[:port]` with no path, query or fragment.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

const REDACTED: &str = "[redacted]";

fn redact_secret<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}

/// A secret: text only, and never quoted back in an error. The environment
/// provider reads `COFFER_METRICS_TOKEN=0123…` as a number, which would drop
/// its leading zeros; such a value is refused, with how to write it as text.
fn secret_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<SecretString>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str(
                "text (a secret read as a number or a boolean, as one of digits only is from the environment, \
                 must be put in double quotes: COFFER_NAME='\"…\"')",
            )
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(text.to_owned())))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a number"), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a number"), &self))
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a number"), &self))
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a number"), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a number"), &self))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::invalid_type(serde::de::Unexpected::Other("a boolean"), &self))
        }
    }
    deserializer.deserialize_option(Text)
}

/// `postgres://u:pw@h/db` → `postgres://u:[redacted]@h/db`, and a password
/// passed as a query parameter (`?password=…`, which drivers accept) too.
fn redact_url_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = redact_userinfo_password(base);
    let Some(query) = query else { return base };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("sslpassword") => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn redact_userinfo_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@` ends the user information: a password may hold `@` itself.
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}"),
        None => url.to_owned(),
    }
}

fn from_figment(error: &figment::Error) -> ConfigError {
    let key = if error.path.is_empty() {
        match &error.kind {
            figment::error::Kind::UnknownField(field, _) => field.clone(),
            figment::error::Kind::MissingField(field) => field.to_string(),
            _ => "config".to_owned(),
        }
    } else {
        error.path.join(".")
    };
    let source = error.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
    let problem = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => format!("unknown key {field:?}"),
        other => other.to_string(),
    };
    ConfigError::new(&key, format!("{problem}{source}").replace('\n', " "))
}

#[path = "config_validation.rs"]
mod validation;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
