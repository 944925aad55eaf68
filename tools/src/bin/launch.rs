//! `launch`: starts the loader daemon and the trainer on one fresh shared-memory segment and
//! supervises the pair (see `tools::launch`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Run a loader + trainer pair over one shared-memory ring")]
struct Cli {
    #[command(flatten)]
    args: tools::launch::LaunchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match tools::launch::run(&cli.args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("launch: error: {e:#}");
            ExitCode::from(proto_shm::exit::FAILED)
        }
    }
}
