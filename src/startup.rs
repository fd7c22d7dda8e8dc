//! Builds the application from a `Config`: connect, migrate, bind. Tests use
//! the bound port (bind to `:0`); `main` runs it until a signal arrives.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};

use crate::cache::{self, CacheError};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::cpu_pinning::WorkerPinner;
use crate::domain::audit::ChainKey;
use crate::keys::MasterKey;
use crate::metadata::{self, MetaError, MetadataStore, PoolSettings};
use crate::service::signing::UrlSigner;
use crate::service::{Identity, Services};
use crate::storage::{self, StorageError};
use crate::workers::Supervisor;

/// Why the server could not start; each variant prints as one clear line.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database ({engine}): {source}")]
    Database {
        engine: &'static str,
        #[source]
        source: MetaError,
    },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] MetaError),
    #[error(
        "the audit chain is sealed under another master key, or its anchor was altered: events written now \
         would not verify. Start with the master key that sealed it (COFFER_MASTER_KEY, or master.key in the \
         data directory); `coffer audit verify` reports the chain's state"
    )]
    AuditSeal,
    #[error("cannot open the storage backend: {0}")]
    Storage(#[source] StorageError),
    #[error("cannot connect to the cache: {0}")]
    Cache(#[source] CacheError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a command opens the metadata store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUse {
    /// `serve`: the master key is created if missing (`<data_dir>/master.key`).
    /// An untouched chain is sealed first, and a sealed chain must hold under the key.
    Serve,
    /// A command that appends audit events or seals the chain, as `Serve`;
    /// but it never makes a key to write with, except for a brand-new
    /// embedded (SQLite) install, whose data dir is the server's.
    Write,
    /// `migrate`: as `Write` when a key exists; without one it only applies
    /// the migrations (it writes no event; `serve` seals the chain later).
    Migrate,
    /// It reads, or replaces the database whole (backup, restore, verify):
    /// no key is created; without one, a throwaway key verifies (and reports the seal).
    Inspect,
}

/// Opens and migrates the metadata store named by the configuration.
pub async fn open_store(config: &Config, usage: StoreUse) -> Result<Arc<dyn MetadataStore>, StartupError> {
    let engine = if config.effective_database_url().starts_with("sqlite:") { "sqlite" } else { "postgres" };
    let master = match MasterKey::load_existing(config)? {
        Some(key) => Some(key),
        None if usage == StoreUse::Serve => Some(MasterKey::load(config)?),
        None => None,
    };
    let keyed = master.is_some();
    let mut store = connect_and_migrate(config, engine, master).await?;
    match usage {
        StoreUse::Inspect => return Ok(store),
        StoreUse::Migrate if !keyed => return Ok(store),
        StoreUse::Write if !keyed => {
            let brand_new = engine == "sqlite" && untouched(&*store).await;
            store.close().await;
            if !brand_new {
                return Err(crate::keys::KeyError::Missing.into());
            }
            store = connect_and_migrate(config, engine, Some(MasterKey::load(config)?)).await?;
        }
        _ => {}
    }
    prepare_audit_chain(&*store).await.map_err(|error| {
        match error {
            StartupError::AuditSeal => tracing::error!("{error}"),
            _ => tracing::error!(%error, "cannot prepare the audit chain"),
        }
        error
    })?;
    Ok(store)
}

/// Connects and migrates, hashing the audit chain with `master`'s key (a
/// throwaway one without it: such a store only reads the chain).
async fn connect_and_migrate(
    config: &Config,
    engine: &'static str,
    master: Option<MasterKey>,
) -> Result<Arc<dyn MetadataStore>, StartupError> {
    let settings = PoolSettings {
        max_connections: config.database_max_connections,
        acquire_timeout: config.database_acquire_timeout,
    };
    let master = match master {
        Some(master) => master,
        None => MasterKey::throwaway()?,
    };
    let chain = ChainKey::new(master.derive("audit chain hmac v1"));
    let store = metadata::connect(&config.effective_database_url(), &settings, chain)
        .await
        .map_err(|source| StartupError::Database { engine, source })?;
    store.migrate().await.map_err(StartupError::Migrate)?;
    Ok(store)
}

/// Whether the audit chain is as migrations created it (nothing to protect yet).
async fn untouched(store: &dyn MetadataStore) -> bool {
    let (Ok(head), Ok(anchor)) = (store.audit_head().await, store.audit_anchor().await) else {
        return false;
    };
    anchor.as_created((head.0, &head.1))
}

/// Seals an untouched chain (no replica can have written keyless events into
/// it), and refuses a sealed chain this master key did not seal.
async fn prepare_audit_chain(store: &dyn MetadataStore) -> Result<(), StartupError> {
    let database = |source| StartupError::Database { engine: store.engine(), source };
    store.seal_audit_anchor(metadata::SealScope::EmptyChain).await.map_err(database)?;
    let anchor = store.audit_anchor().await.map_err(database)?;
    if anchor.claims_seal() && !anchor.seal_holds(store.chain_key()) {
        return Err(StartupError::AuditSeal);
    }
    Ok(())
}

/// Services on the system clock, aligned to the database's clock before they
/// act (and, in `serve`, every minute after).
pub async fn build_aligned_services(config: Config, usage: StoreUse) -> Result<Arc<Services>, StartupError> {
    let clock = Arc::new(crate::clock::DatabaseAlignedClock::new(Arc::new(SystemClock)));
    let services = build_services_for(config, clock, usage).await?;
    if let Err(error) = services.align_clock().await {
        tracing::warn!(error = %error, "could not compare this replica's clock with the database's");
    }
    Ok(services)
}

/// Everything `serve` needs, built from configuration with `clock`.
pub async fn build_services(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Services>, StartupError> {
    build_services_for(config, clock, StoreUse::Serve).await
}

/// As `build_services`, for a command other than `serve` (`StoreUse::Write`:
/// it never makes a master key of its own).
pub async fn build_services_for(
    config: Config,
    clock: Arc<dyn Clock>,
    usage: StoreUse,
) -> Result<Arc<Services>, StartupError> {
    config.validate()?;
    let store = open_store(&config, usage).await?;
    let blobs = storage::from_config(&config).await.map_err(StartupError::Storage)?;
    let cache = cache::from_config(&config).await.map_err(StartupError::Cache)?;
    // `open_store` made sure a key exists, creating one only where `usage` allows.
    let master = MasterKey::load_existing(&config)?.ok_or(crate::keys::KeyError::Missing)?;
    let identity = Identity::new(&config, &master);
    let signer = url_signer(&config, &master);
    let thumbnails = crate::media::Thumbnails::new(&config);
    let metrics = crate::metrics::Metrics::new();
    let store = metadata::instrumented::Instrumented::wrap(store, &metrics);
    let blobs = storage::instrumented::Instrumented::wrap(blobs, &metrics);
    let cache = cache::instrumented::Instrumented::wrap(cache, &metrics);
    let scope_versions = crate::service::scopes::ScopeVersions::for_cache(cache.as_ref());
    Ok(Arc::new(Services {
        thumbnails,
        local_rates: crate::cache::LocalRates::default(),
        metrics,
        config: Arc::new(config),
        store,
        blobs,
        cache,
        clock,
        identity,
        reads: Default::default(),
        signer,
        bound_url: std::sync::OnceLock::new(),
        instance: uuid::Uuid::new_v4().simple().to_string(),
        hints: Default::default(),
        scope_versions,
    }))
}

/// The gateway URL signer: the configured key (or one derived from the master
/// key) and, during a rotation, the previous key until its grace period ends.
fn url_signer(config: &Config, master: &MasterKey) -> UrlSigner {
    let decode = |key: &Option<secrecy::SecretString>| {
        key.as_ref()
            .and_then(|k| crate::keys::decode_master_key(secrecy::ExposeSecret::expose_secret(k)))
            .map(|bytes| secrecy::SecretBox::new(Box::new(bytes)))
    };
    let current = decode(&config.presign_key).unwrap_or_else(|| master.derive("presign hmac v1"));
    let previous = decode(&config.presign_previous_key).zip(config.presign_previous_key_until);
    UrlSigner::new(current, previous)
}

pub struct Application {
    port: u16,
    server: Server,
    services: Arc<Services>,
    workers: Supervisor,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::with_services(build_aligned_services(config, StoreUse::Serve).await?)
    }

    /// Binds and prepares the HTTP server around already-built services.
    pub fn with_services(services: Arc<Services>) -> Result<Self, StartupError> {
        let config = &services.config;
        let addr = config.bind_addr()?;
        let listener =
            TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr: addr.to_string(), source })?;
        let port = listener.local_addr().map_err(|source| StartupError::Bind { addr: addr.to_string(), source })?;
        let _ = services.bound_url.set(format!("http://{port}"));
        let data = web::Data::from(services.clone());
        let workers = config.effective_workers();
        let pinner = Arc::new(WorkerPinner::new(config.worker_cpu_pinning, workers));
        // actix-web builds the app once per worker, on the worker's own thread.
        let server = HttpServer::new(move || {
            pinner.pin_current_thread();
            crate::http::app(data.clone())
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
        .client_request_timeout(config.client_request_timeout)
        .client_disconnect_timeout(config.client_disconnect_timeout)
        .keep_alive(config.keep_alive)
        // A response written in pieces (headers, then a streamed body) must not
        // wait for the client's delayed ACK (nginx's `tcp_nodelay on`, likewise).
        .tcp_nodelay(true)
        .workers(workers)
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr: addr.to_string(), source })?
        .run();
        let workers = Supervisor::for_services(&services);
        Ok(Self { port: port.port(), server, services, workers })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }

    /// A handle to stop the server (gracefully, finishing in-flight requests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or `handle().stop(true)`), then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.workers.stop(self.services.config.shutdown_timeout).await;
        self.services.cache.release().await;
        self.services.store.close().await;
        result
    }
}
