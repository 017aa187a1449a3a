//! `sallyport`: migrations, the whole system on one machine, and the admin verbs.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sallyport::commands::Cli::parse();
    match sallyport::commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // the chain of causes, one per line, instead of a backtrace
            eprintln!("sallyport: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
