//! `launch`: starts the loader daemon and the trainer on one fresh shared-memory segment and
//! supervises the pair. Ctrl-C / SIGTERM are forwarded; when either side dies the other is stopped
//! (SIGTERM, then SIGKILL after 3 s) and `launch` exits non-zero naming the dead side and its last
//! error line. Resuming from a checkpoint starts the loader at the checkpoint's data cursor.
//!
//! Exit codes (`proto_shm::exit`): 0 both finished; 1 a side failed; 130/143 interrupted.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use config::RunConfig;
use proto_shm::exit;

#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    /// Run config (RON).
    #[arg(long)]
    pub config: PathBuf,
    /// Resume from this checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many training steps in total.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Output folder (default: the config's).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Loader worker threads (default: the config's).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// A supervised child: its process, and the last line it printed that looks like an error.
struct Side {
    name: &'static str,
    child: Child,
    last_error: Arc<Mutex<Option<String>>>,
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("binary folder")?.join(name);
    if !p.exists() {
        bail!(
            "{} not found next to launch; build the workspace first (cargo build --release)",
            p.display()
        );
    }
    Ok(p)
}

fn spawn(name: &'static str, mut cmd: Command) -> Result<Side> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the {name}"))?;
    let last_error = Arc::new(Mutex::new(None));
    // Forward both streams line by line, remembering the last error line for the final message.
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    for (stream, is_err) in [
        (Box::new(out) as Box<dyn std::io::Read + Send>, false),
        (Box::new(err), true),
    ] {
        let last = last_error.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("error:") {
                    *last.lock().unwrap() = Some(line.trim().to_string());
                }
                if is_err {
                    eprintln!("[{name}] {line}");
                } else {
                    println!("[{name}] {line}");
                }
            }
        });
    }
    Ok(Side {
        name,
        child,
        last_error,
    })
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Stops a side: SIGTERM, then SIGKILL if it is still there after `grace`.
fn stop(side: &mut Side, grace: Duration) {
    if side.child.try_wait().ok().flatten().is_some() {
        return;
    }
    signal(&side.child, libc::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < grace {
        if side.child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = side.child.kill();
    let _ = side.child.wait();
}

/// The name of a signal, for messages ("SIGKILL").
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// How a side ended, in words.
fn ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("{} (killed)", signal_name(s)),
        (None, None) => "an unknown status".into(),
    }
}

/// Where a resumed run starts: the checkpoint's step and the loader's data cursor. The `launch`
/// binary reads it from the checkpoint (this library does not link the trainer, so the other
/// tools built from it do not need libtorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub step: usize,
    pub next_epoch: u64,
    pub next_batch: u64,
}

/// Runs the pair to its end (`resume`: where `cli.resume`'s checkpoint stands); returns the exit
/// code `launch` should end with.
pub fn run(cli: &LaunchArgs, resume: Option<ResumePoint>) -> Result<u8> {
    let run = RunConfig::from_file(&cli.config)?;
    let name = format!("{}-{}", run.name, std::process::id());
    let shm = proto_shm::options_for_run(&run).dir;
    let mut loader_cmd = Command::new(sibling("loader")?);
    loader_cmd
        .arg("--config")
        .arg(&cli.config)
        .args(["--shm-name", &name]);
    let mut trainer_cmd = Command::new(sibling("trainer")?);
    trainer_cmd
        .arg("--config")
        .arg(&cli.config)
        .args(["--shm-name", &name]);
    let mut done_steps = 0usize;
    if let (Some(ck), Some(at)) = (&cli.resume, resume) {
        done_steps = at.step;
        loader_cmd.args([
            "--start-epoch",
            &at.next_epoch.to_string(),
            "--start-batch",
            &at.next_batch.to_string(),
        ]);
        trainer_cmd.arg("--resume").arg(ck);
        println!(
            "launch: resuming at step {} (epoch {}, batch {})",
            at.step, at.next_epoch, at.next_batch
        );
    }
    // The config's `trainer.max_steps` bounds the loader's stream too, as `--max-steps` does:
    // otherwise the loader would see the trainer leave mid-stream.
    if let Some(m) = cli.max_steps.or(run.trainer.max_steps) {
        if m <= done_steps {
            bail!("--max-steps {m} is not beyond the checkpoint's step {done_steps}");
        }
        loader_cmd.args(["--max-batches", &(m - done_steps).to_string()]);
        trainer_cmd.args(["--max-steps", &m.to_string()]);
    }
    if let Some(w) = cli.workers {
        loader_cmd.args(["--workers", &w.to_string()]);
    }
    if let Some(d) = &cli.out_dir {
        trainer_cmd.arg("--out-dir").arg(d);
    }
    if let Some(n) = cli.checkpoint_every {
        trainer_cmd.args(["--checkpoint-every", &n.to_string()]);
    }

    let sig = Arc::new(AtomicUsize::new(0));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(s, sig.clone(), s as usize)?;
    }
    let mut loader = spawn("loader", loader_cmd)?;
    let mut trainer = spawn("trainer", trainer_cmd)?;
    println!(
        "launch: loader pid {}, trainer pid {}, segment {}",
        loader.child.id(),
        trainer.child.id(),
        name
    );

    let outcome = loop {
        let s = sig.load(Ordering::SeqCst);
        if s != 0 {
            // Forward: the loader tells the trainer why the stream ends.
            signal(&loader.child, s as i32);
            signal(&trainer.child, s as i32);
            stop(&mut loader, Duration::from_secs(5));
            stop(&mut trainer, Duration::from_secs(5));
            eprintln!(
                "launch: interrupted by {}; both sides stopped",
                signal_name(s as i32)
            );
            break exit::signalled(s as i32);
        }
        let l = loader.child.try_wait()?;
        let t = trainer.child.try_wait()?;
        let failed = |side: &Side, status: ExitStatus| {
            let why = side
                .last_error
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "no error message".into());
            eprintln!(
                "launch: {} (pid {}) failed with {}: {why}",
                side.name,
                side.child.id(),
                ended(status)
            );
        };
        match (l, t) {
            (Some(ls), Some(ts)) if ls.success() && ts.success() => break exit::OK,
            (_, Some(ts)) if ts.success() => {
                // The trainer is done (e.g. max steps): the loader's remaining batches are not needed.
                stop(&mut loader, Duration::from_secs(3));
                break exit::OK;
            }
            (Some(ls), _) if !ls.success() => {
                // PEER_GONE means "my peer went away": the trainer died first; blame it if so.
                if ls.code() == Some(exit::PEER_GONE as i32) {
                    std::thread::sleep(Duration::from_millis(200));
                    if let Some(ts) = trainer.child.try_wait()? {
                        if !ts.success() {
                            failed(&trainer, ts);
                            break exit::FAILED;
                        }
                    }
                }
                // Let the trainer report the loader's end itself, briefly, then stop it.
                std::thread::sleep(Duration::from_millis(300));
                stop(&mut trainer, Duration::from_secs(3));
                failed(&loader, ls);
                break exit::FAILED;
            }
            (_, Some(ts)) => {
                // PEER_GONE means "my peer went away": if the loader is dead, it died first.
                if ts.code() == Some(exit::PEER_GONE as i32) {
                    std::thread::sleep(Duration::from_millis(200));
                    if let Some(ls) = loader.child.try_wait()? {
                        if !ls.success() {
                            failed(&loader, ls);
                            break exit::FAILED;
                        }
                    }
                }
                stop(&mut loader, Duration::from_secs(3));
                failed(&trainer, ts);
                break exit::FAILED;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    // Both sides are gone now; if both were killed hard the segment may remain: remove it.
    let seg = shm.join(&name);
    if Path::new(&seg).exists() {
        let _ = std::fs::remove_file(&seg);
    }
    std::thread::sleep(Duration::from_millis(50)); // let the forwarding threads flush
    Ok(outcome)
}
