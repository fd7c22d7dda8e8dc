//! The command line: `serve` (default), `migrate`, `config print`, and admin commands.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use secrecy::SecretString;

use crate::clock::{Clock, DatabaseAlignedClock, SystemClock};
use crate::config::Config;
use crate::domain::Role;
use crate::metadata::{SealOutcome, SealScope};
use crate::service::RequestContext;
use crate::service::audit::{checkpoint_chain, purge_event, read_checkpoint, verify_chain};
use crate::service::identity::PasswordHasher;
use crate::service::users::create_account;
use crate::startup::{Application, StartupError, StoreUse, open_store};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "coffer", version, about = "Self-hosted object storage gateway")]
pub struct Cli {
    /// TOML configuration file; `COFFER_*` environment variables override it.
    #[arg(long, global = true, env = "COFFER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Finish or undo interrupted writes and remove unknown backend objects, once.
    Reconcile,
    /// Write a consistent, portable dump of the metadata database (JSON lines).
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a `coffer backup` dump into an empty metadata database (SQLite or PostgreSQL).
    Restore {
        #[arg(long)]
        from: PathBuf,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Render one thumbnail from a local image file, as the server would (for benchmarks and checks).
    #[command(hide = true)]
    Thumbnail {
        input: std::path::PathBuf,
        #[arg(long, default_value_t = 256)]
        size: u32,
        #[arg(long, default_value = "webp")]
        format: String,
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
    /// Lifecycle rules.
    Lifecycle {
        #[command(subcommand)]
        action: LifecycleAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum LifecycleAction {
    /// Run every bucket's rules once and print the report as JSON.
    Run {
        /// Report what would happen without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Evaluate as if it were this time (RFC 3339); only with --dry-run.
        #[arg(long, requires = "dry_run")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Walk the hash chain and report `{ok, checked, first_bad_id}`; exit 1 if broken.
    Verify,
    /// Delete events older than `--before` (at least `audit_min_retention` old); audited, re-anchors the chain.
    Purge {
        #[arg(long)]
        before: chrono::DateTime<chrono::Utc>,
    },
    /// Key the chain from its next event on (a chain from before keying).
    /// Run once every replica runs this version: an older one would go on
    /// appending keyless events, which then fail verification.
    Seal,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account (the first admin is made this way; no default credentials exist).
    Create {
        username: String,
        #[arg(long, value_parser = ["admin", "user", "auditor"], default_value = "user")]
        role: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        quota_bytes: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration, secrets redacted.
    Print,
}

/// Exit code for configuration errors (like clap's usage errors).
const EXIT_CONFIG: u8 = 2;

/// Parses `args` and runs the command. Every failure is one line on stderr.
pub async fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_CONFIG));
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Config { action: ConfigAction::Print } => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::User { action: UserAction::Create { username, role, quota_bytes, .. } } => {
            create_user(config, &username, &role, quota_bytes).await
        }
        Command::Reconcile => reconcile(config).await,
        Command::Backup { out } => backup(config, &out).await,
        Command::Restore { from } => restore(config, &from).await,
        Command::Audit { action: AuditAction::Verify } => verify_audit(config).await,
        Command::Audit { action: AuditAction::Purge { before } } => purge_audit(config, before).await,
        Command::Audit { action: AuditAction::Seal } => seal_audit(config).await,
        Command::Thumbnail { input, size, format, output } => render_thumbnail(&config, &input, size, &format, &output),
        Command::Lifecycle { action: LifecycleAction::Run { dry_run, as_of } } => {
            run_lifecycle(config, dry_run, as_of).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "command failed");
            eprintln!("error: {error}");
            match error {
                CliError::Startup(StartupError::Config(_)) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("server error: {0}")]
    Server(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

fn init_logs(config: &Config) {
    telemetry::init(config.log_format, &config.log_filter, std::io::stderr);
}

async fn serve(config: Config) -> Result<(), CliError> {
    init_logs(&config);
    let app = Application::build(config).await?;
    let services = app.services();
    tracing::info!(
        port = app.port(),
        database = services.store.engine(),
        storage = services.blobs.kind(),
        cache = services.cache.kind(),
        version = env!("CARGO_PKG_VERSION"),
        "coffer listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("coffer stopped gracefully");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), CliError> {
    init_logs(&config);
    let store = open_store(&config, StoreUse::Migrate).await?;
    store.close().await;
    eprintln!("migrations applied ({})", store.engine());
    Ok(())
}

#[cfg(unix)]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // A new file or none: never one someone placed there (or a symlink), whose owner could read the dump.
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create_new(path)
}

async fn backup(config: Config, out: &std::path::Path) -> Result<(), CliError> {
    init_logs(&config);
    let store = open_store(&config, StoreUse::Inspect).await?;
    // Written aside and renamed when whole: a failed run never leaves a partial file under the real name.
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    // Owner-only: the file holds password hashes, sealed TOTP secrets and credential digests.
    let _ = std::fs::remove_file(&partial);
    let file = private_file(&partial).map_err(|e| CliError::Refused(format!("{}: {e}", partial.display())))?;
    let mut writer = std::io::BufWriter::new(file);
    let result = store.dump(&mut writer, SystemClock.now()).await;
    store.close().await;
    let finished = result.map_err(|error| CliError::Refused(error.to_string())).and_then(|summary| {
        writer.into_inner().map_err(|error| error.into_error())?.sync_all()?;
        std::fs::rename(&partial, out)?;
        Ok(summary)
    });
    match finished {
        Ok(summary) => {
            eprintln!(
                "backed up {} rows of {} tables (schema {}) to {}",
                summary.rows,
                summary.tables,
                summary.schema,
                out.display()
            );
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

async fn restore(config: Config, from: &std::path::Path) -> Result<(), CliError> {
    init_logs(&config);
    let file = std::fs::File::open(from).map_err(|e| CliError::Refused(format!("{}: {e}", from.display())))?;
    let mut reader = std::io::BufReader::new(file);
    let store = open_store(&config, StoreUse::Inspect).await?;
    let result = store.restore(&mut reader).await;
    store.close().await;
    let summary = result.map_err(|error| CliError::Refused(error.to_string()))?;
    eprintln!(
        "restored {} rows of {} tables (schema {}) from {}",
        summary.rows,
        summary.tables,
        summary.schema,
        from.display()
    );
    Ok(())
}

/// The system clock aligned to the database's, as a server keeps it.
async fn database_clock(store: &dyn crate::metadata::MetadataStore) -> DatabaseAlignedClock {
    let clock = DatabaseAlignedClock::new(std::sync::Arc::new(SystemClock));
    if let Err(error) = crate::service::clock_alignment::align(&clock, store).await {
        tracing::warn!(error = %error, "could not compare this host's clock with the database's");
    }
    clock
}

async fn create_user(config: Config, username: &str, role: &str, quota_bytes: Option<i64>) -> Result<(), CliError> {
    init_logs(&config);
    let role: Role = role.parse().map_err(|e: crate::domain::Invalid| CliError::Refused(e.to_string()))?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = SecretString::from(line.trim_end_matches(['\n', '\r']).to_owned());
    let store = open_store(&config, StoreUse::Write).await?;
    let hasher = PasswordHasher::new(&config);
    let clock = database_clock(&*store).await;
    let audit = RequestContext::default().event(clock.now(), "cli", "user.create");
    let result = create_account(&*store, &hasher, &clock, audit, (username, &password, role, quota_bytes)).await;
    store.close().await;
    let user = result.map_err(|error| CliError::Refused(error.to_string()))?;
    eprintln!("created user {} ({})", user.username, user.role);
    Ok(())
}

async fn verify_audit(config: Config) -> Result<(), CliError> {
    init_logs(&config);
    let keyless =
        crate::keys::MasterKey::load_existing(&config).map_err(|error| CliError::Refused(error.to_string()))?.is_none();
    let store = open_store(&config, StoreUse::Inspect).await?;
    // Without the checkpoint, cutting the newest events would go unseen: no "ok" without it.
    let unreadable = |error: &dyn std::fmt::Display| {
        CliError::Refused(format!("cannot read the audit checkpoint from the object store: {error}"))
    };
    let blobs = crate::storage::from_config(&config).await.map_err(|error| unreadable(&error))?;
    let checkpoint = read_checkpoint(&*blobs).await.map_err(|error| unreadable(&error))?;
    let verification = verify_chain(&*store, checkpoint.as_ref()).await;
    store.close().await;
    let verification = verification.map_err(|error| CliError::Refused(error.to_string()))?;
    println!("{}", serde_json::to_string(&verification).unwrap_or_default());
    if verification.ok {
        Ok(())
    } else {
        let hint = if keyless {
            "; no master key is configured here (COFFER_MASTER_KEY, or master.key in COFFER_DATA_DIR), \
             and a keyed chain verifies only under the servers' key"
        } else {
            ""
        };
        Err(CliError::Refused(format!(
            "the audit chain is broken at id {}: {}{hint}",
            verification.first_bad_id.unwrap_or_default(),
            verification.reason.unwrap_or("broken")
        )))
    }
}

/// Seals a chain that verifies, and records the seal in a checkpoint at
/// once. A chain already sealed under this key only gets that checkpoint.
async fn seal_audit(config: Config) -> Result<(), CliError> {
    init_logs(&config);
    let store = open_store(&config, StoreUse::Write).await?;
    let result = seal_verified_chain(&config, &*store).await;
    store.close().await;
    let (keyed_from, sealed_now) = result?;
    let was = if sealed_now { "is now" } else { "was already" };
    eprintln!("the audit chain {was} sealed: events from id {keyed_from} on are keyed");
    Ok(())
}

async fn seal_verified_chain(
    config: &Config,
    store: &dyn crate::metadata::MetadataStore,
) -> Result<(i64, bool), CliError> {
    let refused = |error: &dyn std::fmt::Display| CliError::Refused(error.to_string());
    let blobs = crate::storage::from_config(config).await.map_err(|error| refused(&error))?;
    // Sealing vouches for where the chain starts: never over one that does not verify.
    let checkpoint = verified_checkpoint(&*blobs, store, "nothing sealed").await?;
    let (keyed_from, sealed_now) =
        match store.seal_audit_anchor(SealScope::AnyChain).await.map_err(|error| refused(&error))? {
            SealOutcome::Sealed { keyed_from } => (keyed_from, true),
            SealOutcome::AlreadySealed | SealOutcome::NotEmpty => {
                let anchor = store.audit_anchor().await.map_err(|error| refused(&error))?;
                (anchor.keyed_from.ok_or_else(|| refused(&"the audit anchor carries a seal but no keyed_from"))?, false)
            }
        };
    // Recorded outside the database at once: from then on, unsealing fails verification.
    if checkpoint.is_none_or(|c| c.keyed_from != Some(keyed_from)) {
        let now = database_clock(store).await.now();
        let written = checkpoint_chain(store, &*blobs, now, None).await.map_err(|e| refused(&e))?;
        // None: nothing new to write, perhaps because a server's worker just wrote it.
        let latest = match written {
            Some(written) => Some(written),
            None => read_checkpoint(&*blobs).await.map_err(|error| refused(&error))?,
        };
        if latest.is_none_or(|c| c.keyed_from != Some(keyed_from)) {
            return Err(CliError::Refused(format!(
                "the audit chain is sealed (keyed from id {keyed_from}), but no checkpoint records it (see the log); \
                 run `coffer audit seal` again"
            )));
        }
    }
    Ok((keyed_from, sealed_now))
}

/// The latest checkpoint, once the chain verifies against it; refused (with
/// `consequence`) when it does not.
async fn verified_checkpoint(
    blobs: &dyn crate::storage::BlobStore,
    store: &dyn crate::metadata::MetadataStore,
    consequence: &str,
) -> Result<Option<crate::service::audit::Checkpoint>, CliError> {
    let refused = |error: &dyn std::fmt::Display| CliError::Refused(error.to_string());
    let checkpoint = read_checkpoint(blobs).await.map_err(|error| refused(&error))?;
    let verification = verify_chain(store, checkpoint.as_ref()).await.map_err(|error| refused(&error))?;
    if !verification.ok {
        return Err(CliError::Refused(format!(
            "the audit chain does not verify ({} at id {}); {consequence}",
            verification.reason.unwrap_or("broken"),
            verification.first_bad_id.unwrap_or_default()
        )));
    }
    Ok(checkpoint)
}

async fn purge_audit(config: Config, before: chrono::DateTime<chrono::Utc>) -> Result<(), CliError> {
    init_logs(&config);
    let store = open_store(&config, StoreUse::Write).await?;
    // The minimum age is counted on the database's clock, like retention.
    let now = database_clock(&*store).await.now();
    let youngest_allowed =
        now - chrono::Duration::from_std(config.audit_min_retention).unwrap_or(chrono::Duration::MAX);
    if before > youngest_allowed {
        store.close().await;
        return Err(CliError::Refused(format!(
            "audit events must be kept at least {}; --before must be {} or earlier",
            humantime::format_duration(config.audit_min_retention),
            youngest_allowed.to_rfc3339()
        )));
    }
    // What goes must have verified: a purge removes the evidence of any edit
    // in it. The cut is read first, so only events the walk saw can go.
    let verified = async {
        let first_kept = store.audit_first_kept(before).await.map_err(|error| CliError::Refused(error.to_string()))?;
        let blobs = crate::storage::from_config(&config).await.map_err(|error| CliError::Refused(error.to_string()))?;
        verified_checkpoint(&*blobs, &*store, "nothing purged").await.map(|_| first_kept)
    }
    .await;
    let first_kept = match verified {
        Ok(first_kept) => first_kept,
        Err(error) => {
            store.close().await;
            return Err(error);
        }
    };
    let deleted = store.purge_audit(first_kept, &purge_event(now, before)).await;
    store.close().await;
    let deleted = deleted.map_err(|error| CliError::Refused(error.to_string()))?;
    eprintln!("purged {deleted} audit events older than {}", before.to_rfc3339());
    Ok(())
}

async fn reconcile(config: Config) -> Result<(), CliError> {
    init_logs(&config);
    let services = crate::startup::build_aligned_services(config, StoreUse::Write).await?;
    let result = services.reconcile(None, None).await;
    services.cache.release().await;
    services.store.close().await;
    let (report, _) = result.map_err(|error| CliError::Refused(error.to_string()))?;
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    Ok(())
}

async fn run_lifecycle(
    config: Config,
    dry_run: bool,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), CliError> {
    init_logs(&config);
    let services = crate::startup::build_aligned_services(config, StoreUse::Write).await?;
    let ctx = crate::service::RequestContext { user_agent: Some("coffer lifecycle run".into()), ..Default::default() };
    let result = services.run_lifecycle(&ctx, dry_run, as_of).await;
    services.cache.release().await;
    services.store.close().await;
    let report = result.map_err(|error| CliError::Refused(error.to_string()))?;
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    Ok(())
}

fn render_thumbnail(
    config: &Config,
    input: &std::path::Path,
    size: u32,
    format: &str,
    output: &std::path::Path,
) -> Result<(), CliError> {
    use crate::media::thumbnail::{self, ThumbFormat};
    let refuse = |why: String| CliError::Refused(why);
    let format = ThumbFormat::parse(format).ok_or_else(|| refuse("--format is webp or jpeg".into()))?;
    let bytes = std::fs::read(input).map_err(|e| refuse(format!("{}: {e}", input.display())))?;
    let limits = thumbnail::ImageLimits::from_config(config);
    let thumb = thumbnail::render(&bytes, size, format, &limits).map_err(|e| refuse(e.to_string()))?;
    std::fs::write(output, thumb).map_err(|e| refuse(format!("{}: {e}", output.display())))
}
