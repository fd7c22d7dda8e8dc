//! argon2id password hashing on its own threads, so logins can neither stall
//! the async workers nor use more than `password_hash_concurrency` cores.
//!
//! The threads are few and fixed: each hash allocates `argon2_memory_kib`
//! (19 MiB), and glibc keeps freed blocks in the arena of the thread that
//! freed them. On tokio's blocking pool, whose threads come and go, a flood
//! of logins left a 19 MiB block in every arena (630-950 MiB RSS in B8); here
//! each hashing thread reuses its own.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
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
        let dummy_hash = argon2
            .hash_password(uuid::Uuid::new_v4().to_string().as_bytes())
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency.max(1))
            .thread_name(|n| format!("argon2-{n}"))
            .build()
            .expect("the hashing threads start");
        Self { argon2, threads: Arc::new(threads), permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _permit = self.permits.acquire().await.map_err(ServiceError::internal)?;
        let argon2 = self.argon2.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        self.threads.spawn(move || {
            let _ = done.send(job(argon2));
        });
        result.await.map_err(ServiceError::internal)
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, ServiceError> {
        let password = password.clone();
        self.run(move |argon2| {
            argon2
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| ServiceError::internal(anyhow::anyhow!("argon2: {error}")))
        })
        .await?
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool, ServiceError> {
        let password = password.clone();
        let exists = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let matches = self
            .run(move |argon2| argon2.verify_password(password.expose_secret().as_bytes(), hash.as_str()).is_ok())
            .await?;
        Ok(exists && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    .run(|_| {
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
    }
}
