//! `loader`: serve a run's batches into a shared-memory ring (see `loader::daemon`).
//! Exit codes: 0 done, 1 error, 3 the trainer went away, 130/143 stopped by SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use loader::daemon::{self, DaemonArgs, Outcome};

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
            ExitCode::SUCCESS
        }
        Ok(Outcome::Signalled(sig, stats)) => {
            println!("{}", daemon::summary(&stats));
            eprintln!("loader: stopped by signal {sig}; segment removed");
            ExitCode::from(128 + sig as u8)
        }
        Err(e) => {
            eprintln!("loader: error: {e:#}");
            let peer_gone = e.chain().any(|c| {
                c.downcast_ref::<proto_shm::ShmError>()
                    .is_some_and(|s| s.is_peer_gone())
            });
            ExitCode::from(if peer_gone { 3 } else { 1 })
        }
    }
}
