//! `loader`: serve a run's batches into a shared-memory ring (see `loader::daemon`).
//! Exit codes (`proto_shm::exit`): 0 done, 1 error, 3 the trainer went away, 130/143 stopped by
//! SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use loader::daemon::{self, DaemonArgs, Outcome};
use proto_shm::exit;

#[derive(Parser)]
#[command(about = "Loader daemon: decode, augment and write batches into a shared-memory ring")]
struct Cli {
    #[command(flatten)]
    args: DaemonArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match daemon::run(&cli.args) {
        Ok(Outcome::Finished(stats)) => {
            println!("{}", daemon::summary(&stats));
            ExitCode::from(exit::OK)
        }
        Ok(Outcome::Signalled(sig, stats)) => {
            println!("{}", daemon::summary(&stats));
            eprintln!("loader: stopped by signal {sig}; segment removed");
            ExitCode::from(exit::signalled(sig))
        }
        Err(e) => {
            eprintln!("loader: error: {e:#}");
            ExitCode::from(exit::code_for(e.chain()))
        }
    }
}
