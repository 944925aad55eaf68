//! `trainer`: pretrain from the loader's ring (see `trainer::train`).
//! Exit codes (`proto_shm::exit`): 0 done, 1 error, 3 the loader went away.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Contrastive pretraining from the loader's shared-memory ring")]
struct Cli {
    #[command(flatten)]
    args: trainer::train::TrainArgs,
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
    match trainer::eval::is_validation(&cli.args.config) {
        Ok(true) => {
            return match trainer::eval::validate::run(&cli.args) {
                Ok(r) => {
                    let out = cli.args.out_dir.clone().unwrap_or_else(|| {
                        r.predictions.parent().map(Into::into).unwrap_or_default()
                    });
                    trainer::eval::validate::print_report(&r, &out);
                    ExitCode::from(proto_shm::exit::OK)
                }
                Err(e) => {
                    eprintln!("trainer: error: {e:#}");
                    ExitCode::from(proto_shm::exit::code_for(e.chain()))
                }
            }
        }
        Ok(false) => {}
        Err(e) => {
            eprintln!("trainer: error: {e:#}");
            return ExitCode::from(proto_shm::exit::FAILED);
        }
    }
    match trainer::train::run(&cli.args) {
        Ok(s) => {
            trainer::train::print_summary(&s);
            ExitCode::from(proto_shm::exit::OK)
        }
        Err(e) => {
            eprintln!("trainer: error: {e:#}");
            ExitCode::from(proto_shm::exit::code_for(e.chain()))
        }
    }
}
