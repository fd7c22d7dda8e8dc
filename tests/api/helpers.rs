//! `spawn_app()`: a real Coffer on a random port, on embedded defaults or — when
//! `COFFER_TEST_*` are set — on PostgreSQL, Redis and S3, isolated per test.

use std::sync::Arc;

use chrono::Utc;
use coffer::clock::ManualClock;
use coffer::config::Config;
use coffer::service::Services;
use coffer::startup::{Application, build_services};
use secrecy::SecretString;

use crate::support;

#[allow(dead_code, reason = "the helper serves every test module; each uses a subset")]
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub services: Arc<Services>,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    _data_dir: Option<tempfile::TempDir>,
    database_to_drop: Option<(String, String)>,
}

/// The configuration a test app starts from: isolated data dir, port 0, and
/// the real services named by the environment.
pub async fn test_config() -> (Config, Option<tempfile::TempDir>, Option<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        workers: 1,
        log_filter: "warn".into(),
        ..Config::default()
    };
    let mut database_to_drop = None;
    if let Some(admin) = support::postgres_admin_url() {
        let url = support::create_database(&admin, "coffer_api_").await;
        config.database_url = Some(SecretString::from(url.clone()));
        database_to_drop = Some((admin, url));
    }
    if let Some(redis) = support::redis_url() {
        config.redis_url = Some(SecretString::from(redis));
        config.cache_namespace = support::unique("coffer-test-");
    }
    if let Some(env) = support::s3_env() {
        support::use_s3(&mut config, &env, &format!("{}/", support::unique("api-")));
    }
    (config, Some(dir), database_to_drop)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after letting the test adjust its configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let (mut config, dir, database_to_drop) = test_config().await;
    customize(&mut config);
    start(config, dir, database_to_drop).await
}

async fn start(config: Config, dir: Option<tempfile::TempDir>, database_to_drop: Option<(String, String)>) -> TestApp {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    start_on(config, dir, database_to_drop, clock.clone(), clock).await
}

/// Starts an app whose services read `services_clock`, built over `clock` (the one tests move).
async fn start_on(
    config: Config,
    dir: Option<tempfile::TempDir>,
    database_to_drop: Option<(String, String)>,
    clock: Arc<ManualClock>,
    services_clock: Arc<dyn coffer::clock::Clock>,
) -> TestApp {
    install_log_capture();
    let services = build_services(config.clone(), services_clock).await.expect("build services");
    let app = Application::with_services(services.clone()).expect("bind");
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: client(),
        services,
        clock,
        config,
        handle,
        _data_dir: dir,
        database_to_drop,
    }
}

/// Every log line of this test binary, for tests that assert what is never logged.
static CAPTURED_LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = CAPTURED_LOGS.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    if std::env::var("TEST_LOG").is_ok() {
        coffer::telemetry::init(coffer::config::LogFormat::Pretty, "info", std::io::stdout);
    } else {
        coffer::telemetry::init(coffer::config::LogFormat::Json, "debug", || CaptureWriter);
    }
}

pub fn captured_logs() -> String {
    CAPTURED_LOGS.lock().map(|logs| String::from_utf8_lossy(&logs).into_owned()).unwrap_or_default()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("http client")
}

#[allow(dead_code, reason = "the helper serves every test module; each uses a subset")]
impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// A second instance on the same database, storage and cache (another replica).
    pub async fn replica(&self) -> TestApp {
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".into();
        start(config, None, None).await
    }

    /// Another replica whose own clock runs `ahead` of the others' (and the
    /// database's), corrected to the database's clock as `serve` does.
    pub async fn replica_with_aligned_clock(&self, ahead: chrono::Duration) -> TestApp {
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".into();
        let clock = Arc::new(ManualClock::new(Utc::now() + ahead));
        let aligned = Arc::new(coffer::clock::DatabaseAlignedClock::new(clock.clone()));
        let replica = start_on(config, None, None, clock, aligned).await;
        replica.services.align_clock().await.expect("align the clock");
        replica
    }

    /// Another instance on the same data with a different configuration.
    pub async fn replica_with(&self, config: Config) -> TestApp {
        start(config, None, None).await
    }
}

/// Runs `command` with `input` on its standard input; its output and status.
pub fn run_with_input(command: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn coffer");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// A fresh strong password (never in the common list).
pub fn strong_password() -> String {
    format!("Tr0ub4dor&3-{}", uuid::Uuid::new_v4().simple())
}

#[allow(dead_code, reason = "the helper serves every test module; each uses a subset")]
impl TestApp {
    /// Creates an account directly through the service layer; returns its password.
    pub async fn create_user(&self, username: &str, role: coffer::domain::Role) -> String {
        let password = strong_password();
        let secret = secrecy::SecretString::from(password.clone());
        let audit = coffer::service::RequestContext::default().event(self.clock_now(), "test", "user.create");
        coffer::service::users::create_account(
            &*self.services.store,
            &self.services.identity.passwords,
            &*self.services.clock,
            audit,
            (username, &secret, role, None),
        )
        .await
        .expect("create user");
        password
    }

    /// Stops the server like SIGTERM does: in-flight requests finish first.
    pub async fn stop_gracefully(&self) {
        self.handle.stop(true).await;
    }

    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        coffer::clock::Clock::now(&*self.clock)
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request")
    }

    /// Logs in and returns the token response (fails the test if MFA or an error answers).
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let response =
            self.post_json("/api/v1/auth/login", serde_json::json!({"username": username, "password": password})).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: serde_json::Value = response.json().await.expect("json");
        Tokens {
            access: body["access_token"].as_str().expect("access token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh token").to_owned(),
        }
    }

    /// A new user with a session.
    pub async fn user_session(&self, username: &str, role: coffer::domain::Role) -> Tokens {
        let password = self.create_user(username, role).await;
        self.login(username, &password).await
    }

    /// Runs SQL directly against the app's database (tampering tests).
    pub async fn execute_sql(&self, sql: &str) {
        use secrecy::ExposeSecret;
        use sqlx::Connection;
        let url = self.config.effective_database_url();
        let statement = sqlx::AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("connect sqlite");
            sqlx::raw_sql(statement).execute(&mut connection).await.expect("execute");
        } else {
            let url = self.config.database_url.as_ref().map(|u| u.expose_secret().to_owned()).unwrap_or(url);
            let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect postgres");
            sqlx::raw_sql(statement).execute(&mut connection).await.expect("execute");
        }
    }

    /// The `coffer` binary pointed at this app's database, data dir and storage.
    pub fn coffer_command(&self) -> std::process::Command {
        use secrecy::ExposeSecret;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        for (name, _) in std::env::vars() {
            if name.starts_with("COFFER_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let config = &self.config;
        command.env("COFFER_DATA_DIR", &config.data_dir);
        if let Some(url) = &config.database_url {
            command.env("COFFER_DATABASE_URL", url.expose_secret());
        }
        if config.storage == coffer::config::StorageKind::S3 {
            command
                .env("COFFER_STORAGE", "s3")
                .env("COFFER_S3_ENDPOINT", config.s3_endpoint.clone().unwrap_or_default())
                .env("COFFER_S3_REGION", &config.s3_region)
                .env("COFFER_S3_BUCKET", config.s3_bucket.clone().unwrap_or_default())
                .env("COFFER_S3_ACCESS_KEY_ID", config.s3_access_key_id.clone().unwrap_or_default())
                .env(
                    "COFFER_S3_SECRET_ACCESS_KEY",
                    config.s3_secret_access_key.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default(),
                )
                .env("COFFER_S3_FORCE_PATH_STYLE", "true")
                .env("COFFER_S3_PREFIX", &config.s3_prefix);
        }
        command.stdin(std::process::Stdio::null());
        command
    }

    /// `POST /api/v1/me/api-keys` with `body` for the session `token`: the created key as JSON.
    pub async fn create_api_key(&self, token: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self.with_token(reqwest::Method::POST, "/api/v1/me/api-keys", token).json(&body).send().await;
        response.expect("create key").json().await.expect("json")
    }

    /// Grants `username` `permission` on `bucket`, as the bucket's manager `token` (asserts `204`).
    pub async fn grant(&self, token: &str, bucket: &str, username: &str, permission: &str) {
        let path = format!("/api/v1/buckets/{bucket}/grants/{username}");
        let response =
            self.with_token(reqwest::Method::PUT, &path, token).json(&serde_json::json!({ "permission": permission }));
        assert_eq!(response.send().await.expect("grant").status(), 204, "grant {permission} on {bucket} to {username}");
    }

    /// `GET path` with a bearer token, answered as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.with_token(reqwest::Method::GET, path, token).send().await.expect("GET");
        response.json().await.expect("json")
    }

    pub fn with_token(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some((admin, url)) = self.database_to_drop.take() {
            support::drop_database_blocking(admin, url);
        }
    }
}

/// Reads a problem+json body, asserting the content type.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.expect("problem json")
}

/// A Redis of this test's own, on a free port, which the test may stop.
pub struct PrivateRedis {
    child: std::process::Child,
}

impl PrivateRedis {
    pub fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed with the test services)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}
