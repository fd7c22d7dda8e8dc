//! The `coffer` binary: see `coffer --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffer::cli::run(std::env::args_os()).await
}
