//! `launch`: starts the loader daemon and the trainer on one fresh shared-memory segment and
//! supervises the pair. Ctrl-C / SIGTERM are forwarded; when either side dies the other is stopped
//! (SIGTERM, then SIGKILL after 3 s) and `launch` exits non-zero naming the dead side and its last
//! error line. Resuming from a checkpoint starts the loader at the checkpoint's data cursor.
//!
//! Data parallelism (`--nproc-per-node N`, and `--nnodes M --node-rank R --master-addr A
//! --master-port P` across machines, torchrun's flags): one loader + trainer pair per rank, each
//! pair on its own ring, each loader serving its rank's shard of every epoch; the trainers find
//! each other through torchrun's variables (c10d's TCPStore on the master). One loader per rank
//! rather than one daemon feeding every ring: a loader's failure stays with its rank, no ring code
//! is new, and in BENCHMARKS.md's scaling run ("Data parallelism") the trainers never waited for
//! data. Any side that
//! ends badly ends every side on this node (the other nodes' trainers then fail their next
//! collective and their `launch` ends them), and `launch` names the side that died first.
//!
//! Exit codes (`proto_shm::exit`): 0 all finished; 1 a side failed; 130/143 interrupted.

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
    /// Loader worker threads, per loader (default: the config's).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Data-parallel ranks on this machine: one loader + trainer pair each.
    #[arg(long, default_value_t = 1)]
    pub nproc_per_node: usize,
    /// Machines in the run (each runs `launch` with its own --node-rank).
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// This machine's place among the --nnodes (0 hosts the rendezvous).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Address of node 0, where rank 0 hosts the rendezvous store.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store on node 0.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,
    /// Seconds the trainers wait for every rank to join, and for any one collective.
    #[arg(long)]
    pub dist_timeout_s: Option<f64>,
}

impl LaunchArgs {
    /// One pair on this machine, everything else from the config (what `launch --config` does).
    pub fn new(config: PathBuf) -> LaunchArgs {
        LaunchArgs {
            config,
            resume: None,
            max_steps: None,
            out_dir: None,
            checkpoint_every: None,
            workers: None,
            nproc_per_node: 1,
            nnodes: 1,
            node_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            dist_timeout_s: None,
        }
    }
}

/// A supervised child: its process, and the last line it printed that looks like an error.
struct Side {
    name: String,
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

fn spawn(name: String, mut cmd: Command) -> Result<Side> {
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
        let name = name.clone();
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
fn ended_with(status: ExitStatus) -> String {
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

/// One rank's pair on this node.
struct Rank {
    loader: Side,
    trainer: Side,
    segment: String,
}

/// Runs every local rank's pair to its end (`resume`: where `cli.resume`'s checkpoint stands);
/// returns the exit code `launch` should end with.
pub fn run(cli: &LaunchArgs, resume: Option<ResumePoint>) -> Result<u8> {
    let run = RunConfig::from_file(&cli.config)?;
    if cli.nproc_per_node == 0 || cli.nnodes == 0 {
        bail!("--nproc-per-node and --nnodes must be at least 1");
    }
    if cli.node_rank >= cli.nnodes {
        bail!(
            "--node-rank {} must be below --nnodes {}",
            cli.node_rank,
            cli.nnodes
        );
    }
    let world = cli.nnodes * cli.nproc_per_node;
    let shm = proto_shm::options_for_run(&run).dir;
    let mut done_steps = 0usize;
    if let (Some(_), Some(at)) = (&cli.resume, resume) {
        done_steps = at.step;
        println!(
            "launch: resuming at step {} (epoch {}, batch {})",
            at.step, at.next_epoch, at.next_batch
        );
    }
    // The config's `trainer.max_steps` bounds the loader's stream too, as `--max-steps` does:
    // otherwise the loader would see the trainer leave mid-stream.
    let max_steps = cli.max_steps.or(run.trainer.max_steps);
    if let Some(m) = max_steps {
        if m <= done_steps {
            bail!("--max-steps {m} is not beyond the checkpoint's step {done_steps}");
        }
    }

    let sig = Arc::new(AtomicUsize::new(0));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(s, sig.clone(), s as usize)?;
    }
    let mut ranks = Vec::new();
    for local in 0..cli.nproc_per_node {
        let rank = cli.node_rank * cli.nproc_per_node + local;
        let segment = if world == 1 {
            format!("{}-{}", run.name, std::process::id())
        } else {
            format!("{}-{}-r{rank}", run.name, std::process::id())
        };
        let (mut loader_cmd, mut trainer_cmd) =
            pair_commands(cli, resume, &segment, max_steps, done_steps)?;
        let suffix = if world == 1 {
            String::new()
        } else {
            loader_cmd.args([
                "--rank",
                &rank.to_string(),
                "--world-size",
                &world.to_string(),
            ]);
            trainer_cmd
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", local.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("LOCAL_WORLD_SIZE", cli.nproc_per_node.to_string())
                .env("MASTER_ADDR", &cli.master_addr)
                .env("MASTER_PORT", cli.master_port.to_string());
            format!(" {rank}")
        };
        let loader = spawn(format!("loader{suffix}"), loader_cmd)?;
        let trainer = spawn(format!("trainer{suffix}"), trainer_cmd)?;
        let label = if world == 1 {
            String::new()
        } else {
            format!("rank {rank}: ")
        };
        println!(
            "launch: {label}loader pid {}, trainer pid {}, segment {}",
            loader.child.id(),
            trainer.child.id(),
            segment
        );
        ranks.push(Rank {
            loader,
            trainer,
            segment,
        });
    }

    let outcome = supervise(&mut ranks, &sig)?;
    // Every side is gone now; a segment whose two sides were killed hard may remain: remove it.
    for r in &ranks {
        let seg = shm.join(&r.segment);
        if Path::new(&seg).exists() {
            let _ = std::fs::remove_file(&seg);
        }
    }
    std::thread::sleep(Duration::from_millis(50)); // let the forwarding threads flush
    Ok(outcome)
}

/// The loader's and the trainer's command lines for one rank's segment.
fn pair_commands(
    cli: &LaunchArgs,
    resume: Option<ResumePoint>,
    segment: &str,
    max_steps: Option<usize>,
    done_steps: usize,
) -> Result<(Command, Command)> {
    let mut loader_cmd = Command::new(sibling("loader")?);
    loader_cmd
        .arg("--config")
        .arg(&cli.config)
        .args(["--shm-name", segment]);
    let mut trainer_cmd = Command::new(sibling("trainer")?);
    trainer_cmd
        .arg("--config")
        .arg(&cli.config)
        .args(["--shm-name", segment]);
    if let (Some(ck), Some(at)) = (&cli.resume, resume) {
        loader_cmd.args([
            "--start-epoch",
            &at.next_epoch.to_string(),
            "--start-batch",
            &at.next_batch.to_string(),
        ]);
        trainer_cmd.arg("--resume").arg(ck);
    }
    if let Some(m) = max_steps {
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
    if let Some(t) = cli.dist_timeout_s {
        trainer_cmd.args(["--dist-timeout-s", &t.to_string()]);
    }
    Ok((loader_cmd, trainer_cmd))
}

/// How much a failed side looks like the cause rather than a casualty: a side that reports its
/// peer gone (exit 3) or a collective broken by another rank is a casualty; a side killed by a
/// signal nobody here sent is the likeliest cause.
fn cause_score(side: &Side, status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let casualty = status.code() == Some(exit::PEER_GONE as i32)
        || side
            .last_error
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|e| e.contains("another rank died"));
    match (casualty, status.signal().is_some()) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 2,
    }
}

/// Waits for every side; stops them all when one fails or a signal arrives.
fn supervise(ranks: &mut [Rank], sig: &AtomicUsize) -> Result<u8> {
    loop {
        let s = sig.load(Ordering::SeqCst);
        if s != 0 {
            // Forward: each loader tells its trainer why the stream ends.
            for r in ranks.iter() {
                signal(&r.loader.child, s as i32);
                signal(&r.trainer.child, s as i32);
            }
            for r in ranks.iter_mut() {
                stop(&mut r.loader, Duration::from_secs(5));
                stop(&mut r.trainer, Duration::from_secs(5));
            }
            eprintln!(
                "launch: interrupted by {}; every side stopped",
                signal_name(s as i32)
            );
            return Ok(exit::signalled(s as i32));
        }
        if ranks.iter_mut().any(Rank::failed) {
            // Let the others notice and say why (a trainer reports its loader's end, a rank its
            // broken collective), then judge who died first.
            std::thread::sleep(Duration::from_millis(300));
            let mut ended: Vec<(u8, &Side, ExitStatus)> = Vec::new();
            for r in ranks.iter_mut() {
                let trainer_ok = matches!(r.trainer.child.try_wait(), Ok(Some(st)) if st.success());
                for side in [&mut r.loader, &mut r.trainer] {
                    if let Ok(Some(st)) = side.child.try_wait() {
                        if !st.success() && !trainer_ok {
                            ended.push((cause_score(side, st), &*side, st));
                        }
                    }
                }
            }
            // Highest score first; among equals, the first in rank order.
            let blamed = ended
                .iter()
                .enumerate()
                .max_by_key(|(i, (score, _, _))| (*score, std::cmp::Reverse(*i)))
                .map(|(_, (_, side, st))| {
                    let why = side
                        .last_error
                        .lock()
                        .unwrap()
                        .clone()
                        .unwrap_or_else(|| "no error message".into());
                    format!(
                        "launch: {} (pid {}) failed with {}: {why}",
                        side.name,
                        side.child.id(),
                        ended_with(*st)
                    )
                });
            for r in ranks.iter_mut() {
                stop(&mut r.trainer, Duration::from_secs(3));
                stop(&mut r.loader, Duration::from_secs(3));
            }
            if let Some(msg) = blamed {
                eprintln!("{msg}");
            }
            return Ok(exit::FAILED);
        }
        let mut trainers_done = true;
        for r in ranks.iter_mut() {
            if r.trainer.child.try_wait()?.is_none() {
                trainers_done = false;
            }
        }
        if trainers_done {
            // Every trainer is done (e.g. max steps): the loaders' remaining batches are not
            // needed.
            for r in ranks.iter_mut() {
                stop(&mut r.loader, Duration::from_secs(3));
            }
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Rank {
    /// Whether a side of this rank has ended badly. A loader that ends after its trainer
    /// finished (its remaining batches unread) is not a failure. Reaped children keep their
    /// status, so later `try_wait`s see the same.
    fn failed(&mut self) -> bool {
        match self.trainer.child.try_wait() {
            Ok(Some(st)) if st.success() => false,
            Ok(Some(_)) => true,
            _ => matches!(self.loader.child.try_wait(), Ok(Some(st)) if !st.success()),
        }
    }
}
