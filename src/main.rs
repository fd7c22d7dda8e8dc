//! The `coffer` binary: see `coffer --help`.

/// mimalloc returns freed memory to the system within milliseconds and keeps
/// no per-thread arenas, so a streamed upload's footprint stays flat where
/// glibc's arenas grew with every worker thread (see docs/performance.md, B3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffer::cli::run(std::env::args_os()).await
}
