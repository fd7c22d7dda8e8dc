//! Conformance suites: the same cases against every adapter of a port —
//! `BlobStore` on the filesystem and on a real S3 server, `MetadataStore` on
//! SQLite and PostgreSQL, `Cache` in process and in Redis.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod coordination;
mod guards;
mod lock_order;
mod metadata;
mod storage;

/// Generates one `#[tokio::test]` per (adapter, case): `$adapter` is an async
/// fn returning `Option<Fixture>` (None: that service is not configured).
macro_rules! for_each_adapter {
    ({ $($adapter:ident),* }: $cases:tt) => {
        $( $crate::for_each_adapter!(@adapter $adapter $cases); )*
    };
    (@adapter $adapter:ident [$($case:ident),* $(,)?]) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = super::$adapter().await else {
                        eprintln!("skipped: {} is not configured", stringify!($adapter));
                        return;
                    };
                    super::$case(&fixture).await;
                }
            )*
        }
    };
}
pub(crate) use for_each_adapter;
