//! `sallyport-bench`: parse the command line, run, exit with the verdict.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bench::app::main(bench::cli::Cli::parse()).await
}
