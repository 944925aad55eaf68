//! `launch`: starts the loader daemon and the trainer on one fresh shared-memory segment and
//! supervises the pair (see `tools::launch`).

use std::process::ExitCode;

use clap::Parser;
use tools::launch::ResumePoint;

#[derive(Parser)]
#[command(about = "Run a loader + trainer pair over one shared-memory ring")]
struct Cli {
    #[command(flatten)]
    args: tools::launch::LaunchArgs,
}

/// The resume point of `--resume`'s checkpoint (verified: magic, header, checksums).
fn resume_point(args: &tools::launch::LaunchArgs) -> anyhow::Result<Option<ResumePoint>> {
    let Some(ck) = &args.resume else {
        return Ok(None);
    };
    let c = trainer::checkpoint::load(ck)?;
    Ok(Some(ResumePoint {
        step: c.state.step,
        next_epoch: c.state.next_epoch,
        next_batch: c.state.next_batch,
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match resume_point(&cli.args).and_then(|at| tools::launch::run(&cli.args, at)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("launch: error: {e:#}");
            ExitCode::from(proto_shm::exit::FAILED)
        }
    }
}
