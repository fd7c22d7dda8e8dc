//! argon2id password hashing on its own threads, so logins can neither stall
//! the async workers nor use more than `password_hash_concurrency` cores.
//!
//! The threads are few and fixed: each hash needs `argon2_memory_kib`
//! (19 MiB), and glibc keeps freed blocks in the arena of the thread that
//! freed them. On tokio's blocking pool, whose threads come and go, a flood
//! of logins left a 19 MiB block in every arena (630-950 MiB RSS in B8).
//! Each thread keeps its working memory while more logins wait (a flood
//! reuses it) and gives it back to the system after the last one (see
//! `with_working_memory`): an idle server holds none.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::service::ServiceError;

pub struct PasswordHasher {
    argon2: Argon2<'static>,
    threads: Arc<rayon::ThreadPool>,
    /// Logins waiting for a hashing thread wait here, not in the pool's queue.
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so both cases cost the same.
    dummy_hash: String,
    /// Hashes asked for and not yet finished (waiting or running).
    demand: Arc<AtomicUsize>,
}

/// Counts one hash in `demand` until dropped (also when the login is abandoned).
struct Demand(Arc<AtomicUsize>);

impl Demand {
    fn start(demand: &Arc<AtomicUsize>) -> Self {
        demand.fetch_add(1, Ordering::SeqCst);
        Self(demand.clone())
    }
}

impl Drop for Demand {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    pub fn new(config: &Config) -> Self {
        // Config validation guarantees OWASP-or-stronger parameters; fall back to the defaults otherwise.
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)
            .unwrap_or(Params::DEFAULT);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        // Half the cores by default: a flood of logins must leave the rest serving requests.
        let concurrency =
            if config.password_hash_concurrency == 0 { cores / 2 } else { config.password_hash_concurrency };
        let dummy_hash = hash_phc(&argon2, uuid::Uuid::new_v4().to_string().as_bytes(), false).unwrap_or_default();
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency.max(1))
            .thread_name(|n| format!("argon2-{n}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("the hashing threads start");
        Self {
            argon2,
            threads: Arc::new(threads),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash,
            demand: Arc::default(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(Argon2<'static>, bool) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _demand = Demand::start(&self.demand);
        let _permit = self.permits.acquire().await.map_err(ServiceError::internal)?;
        let argon2 = self.argon2.clone();
        let demand = self.demand.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        self.threads.spawn(move || {
            let others_waiting = demand.load(Ordering::SeqCst) > 1;
            let _ = done.send(job(argon2, others_waiting));
        });
        result.await.map_err(ServiceError::internal)
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, ServiceError> {
        let password = password.clone();
        self.run(move |argon2, keep_memory| {
            hash_phc(&argon2, password.expose_secret().as_bytes(), keep_memory)
                .map_err(|error| ServiceError::internal(anyhow::anyhow!("argon2: {error}")))
        })
        .await?
    }

    /// Whether `stored` was made with this hasher's algorithm, version and
    /// parameters; a hash that is not gets replaced at the next right login,
    /// so that raising the parameters strengthens every account in time (and
    /// unknown names, checked against a dummy hash of the current ones, stop
    /// taking longer than real accounts).
    pub fn is_current(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else { return false };
        let ours = self.argon2.params();
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(u32::from(Version::V0x13))
            && Params::try_from(&parsed)
                .is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (ours.m_cost(), ours.t_cost(), ours.p_cost()))
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool, ServiceError> {
        let password = password.clone();
        let exists = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let matches = self
            .run(move |_, keep_memory| {
                verify_phc(password.expose_secret().as_bytes(), &hash, keep_memory).unwrap_or(false)
            })
            .await?;
        Ok(exists && matches)
    }
}

/// Runs the calling hashing thread under `SCHED_IDLE`: it gets any core no
/// request needs, and a request-serving thread that wakes up takes the core
/// from it at once. Saturating reads kept 0.81x of their idle throughput
/// while logins ran at nice 10 (the earlier setting), 1.00x now (B8b); logins
/// then get what the reads leave. Best effort: a system that refuses it
/// leaves the thread as it was.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(error) =
        thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::debug!(?error, "could not move the hashing thread to the idle scheduling class");
    }
}

/// More than glibc's largest dynamic mmap threshold (32 MiB on 64-bit).
const ALWAYS_MAPPED_BYTES: usize = 33 << 20;

thread_local! {
    /// This hashing thread's working memory, kept between hashes of a burst.
    static WORKING_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hash` with argon2's working memory, then keeps it for the next hash
/// when `keep` (more logins are waiting) or frees it. The reservation
/// exceeds the largest mmap threshold glibc ever adopts, so it is always a
/// fresh mapping, returned to the system when freed; only the blocks argon2
/// uses are touched, so only they become resident. A 19 MiB allocation would
/// instead, after the first, come from the thread's arena and stay resident.
/// Reusing it within a burst spares each login ~5,000 page faults and an
/// unmap, which interrupt the other cores (B8b measured p99 2.2–2.4× idle without it).
///
/// Kept blocks are not zeroed again: argon2's first pass writes every block
/// before any is read, so the previous hash's contents never reach the
/// result (`kept_memory_does_not_change_the_hash`), and a login skips a
/// 19 MiB `memset` (5 % of its hashing time).
fn with_working_memory<T>(params: &Params, keep: bool, hash: impl FnOnce(&mut [Block]) -> T) -> T {
    WORKING_MEMORY.with_borrow_mut(|blocks| {
        let needed = params.block_count();
        if blocks.capacity() < needed {
            *blocks = Vec::with_capacity(needed.max(ALWAYS_MAPPED_BYTES / Block::SIZE));
        }
        blocks.resize(needed, Block::default());
        let result = hash(blocks);
        if !keep {
            *blocks = Vec::new();
        }
        result
    })
}

/// Hashes `password` under a fresh salt into a PHC string (`$argon2id$v=19$m=…`).
fn hash_phc(argon2: &Argon2<'_>, password: &[u8], keep_memory: bool) -> Result<String, argon2::Error> {
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_working_memory(argon2.params(), keep_memory, |blocks| {
        argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, blocks)
    })?;
    let output = Output::new(&out).map_err(|_| argon2::Error::OutputTooShort)?;
    let params = argon2.params().try_into().map_err(|_| argon2::Error::AlgorithmInvalid)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, under the algorithm,
/// version and parameters recorded in it (constant-time comparison); `None`
/// when `stored` is not an argon2 hash.
fn verify_phc(password: &[u8], stored: &str, keep_memory: bool) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = parsed.version.map_or(Ok(Version::default()), Version::try_from).ok()?;
    let expected = parsed.hash?;
    let salt = parsed.salt?;
    let params = Params::try_from(&parsed).ok()?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    with_working_memory(argon2.params(), keep_memory, |blocks| {
        argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, blocks)
    })
    .ok()?;
    Some(Output::new(&out).ok()? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_hashes_of_the_current_parameters_are_current() {
        let hasher = PasswordHasher::new(&Config::default());
        let secret = SecretString::from("correct horse battery staple".to_owned());
        let current = hasher.hash(&secret).await.expect("hash");
        assert!(hasher.is_current(&current), "{current}");
        let stronger = Config { argon2_memory_kib: 65536, ..Config::default() };
        assert!(!PasswordHasher::new(&stronger).is_current(&current), "made with 19 MiB, checked against 64 MiB");
        assert!(!hasher.is_current("not a hash"));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters() {
        let hasher = PasswordHasher::new(&Config::default());
        let secret = SecretString::from("correct horse battery staple".to_owned());
        let hash = hasher.hash(&secret).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&secret, Some(&hash)).await.expect("verify"));
        let wrong = SecretString::from("correct horse battery stapler".to_owned());
        assert!(!hasher.verify(&wrong, Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify(&secret, None).await.expect("verify"), "no account never matches");
        assert!(!hasher.verify(&secret, Some("not a hash")).await.expect("verify"));
    }

    /// Hashes stored by the argon2 crate's own hasher (any parameters) still
    /// verify, and ours verify with it: the PHC strings are the same format.
    #[test]
    fn hashes_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let legacy_params = Params::new(8192, 3, 1, None).expect("params");
        let legacy = Argon2::new(Algorithm::Argon2id, Version::V0x13, legacy_params);
        let stored = legacy.hash_password(b"old password").expect("hash").to_string();
        assert_eq!(verify_phc(b"old password", &stored, true), Some(true));
        assert_eq!(verify_phc(b"old passwore", &stored, false), Some(false));
        let ours = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT);
        let hash = hash_phc(&ours, b"new password", false).expect("hash");
        assert!(ours.verify_password(b"new password", hash.as_str()).is_ok());
        assert!(ours.verify_password(b"new passwore", hash.as_str()).is_err());
        assert_eq!(verify_phc(b"x", "$pbkdf2$i=1000$c2FsdA$aGFzaA", false), None);
    }

    /// A hash made in memory a previous hash left dirty (kept for a burst, not
    /// zeroed) equals the argon2 crate's own, made in fresh memory.
    #[test]
    fn kept_memory_does_not_change_the_hash() {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 2, 1, None).expect("params"));
        let salt = b"a sixteen byte salt";
        let mut expected = [0u8; 32];
        argon2.hash_password_into(b"the password", salt, &mut expected).expect("hash");
        let mut dirty = [0u8; 32];
        with_working_memory(argon2.params(), true, |blocks| {
            argon2.hash_password_into_with_memory(b"another password", b"another salt 123", &mut dirty, blocks)
        })
        .expect("hash");
        let left =
            WORKING_MEMORY.with_borrow(|blocks| blocks.iter().filter(|b| b.as_ref().iter().any(|w| *w != 0)).count());
        assert!(left > 1000, "the first hash left its blocks behind ({left} non-zero)");
        let mut kept = [0u8; 32];
        with_working_memory(argon2.params(), false, |blocks| {
            argon2.hash_password_into_with_memory(b"the password", salt, &mut kept, blocks)
        })
        .expect("hash");
        assert_eq!(kept, expected);
        assert_ne!(dirty, expected);
        assert_eq!(WORKING_MEMORY.with_borrow(Vec::capacity), 0, "freed after the last hash of a burst");
    }

    /// Other blocking work (file storage, thumbnails) must not spread hashes
    /// over more threads, each keeping its own 19 MiB in its malloc arena.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_stays_on_its_own_few_threads() {
        let config = Config { password_hash_concurrency: 2, argon2_iterations: 2, ..Config::default() };
        let hasher = Arc::new(PasswordHasher::new(&config));
        let mut logins = Vec::new();
        let mut other_work = Vec::new();
        for _ in 0..24 {
            other_work.push(tokio::task::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(3))));
            let hasher = hasher.clone();
            logins.push(tokio::spawn(async move {
                hasher
                    .run(|_, _| {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        std::thread::current().id()
                    })
                    .await
                    .expect("run")
            }));
        }
        let mut threads = std::collections::HashSet::new();
        for login in logins {
            threads.insert(login.await.expect("join"));
        }
        for work in other_work {
            work.await.expect("join");
        }
        assert!(threads.len() <= 2, "hashed on {} threads", threads.len());
        // The thread's scheduling policy, field 41 of /proc/thread-self/stat (5 = SCHED_IDLE).
        let stat = hasher.run(|_, _| std::fs::read_to_string("/proc/thread-self/stat")).await.expect("run");
        let policy: i32 =
            stat.expect("stat").rsplit(") ").next().and_then(|f| f.split(' ').nth(38)?.parse().ok()).expect("policy");
        assert_eq!(policy, 5, "hashing runs in the idle scheduling class");
    }
}
