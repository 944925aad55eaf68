//! The ring between real processes: byte-exact delivery in order, and every fault the design names
//! (SIGKILL of either side, stale and live segments, schema mismatch, a tmpfs too small) — each
//! checked for the error, its latency, the exit code and what is left in the shm directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEER: &str = env!("CARGO_BIN_EXE_ring-peer");

fn unique(name: &str) -> String {
    format!("e2e-{name}-{}", std::process::id())
}

fn shm_dir() -> PathBuf {
    std::env::var_os("PROTO_SHM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

fn peer(role: &str, name: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(PEER);
    c.arg(role).arg("--name").arg(name).args(extra);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn wait_out(child: Child) -> Out {
    let o = child.wait_with_output().expect("wait for peer");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Reads the child's stdout until a line starts with `prefix`; returns that line.
fn wait_line(child: &mut Child, prefix: &str, limit: Duration) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(&wanted) {
                let _ = tx.send(line);
                // Keep draining so the child never blocks on a full pipe.
            }
        }
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("peer did not print a line starting with {prefix:?}"))
}

fn kill9(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
}

fn wait_exit(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("peer still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

fn assert_gone(name: &str) {
    let p = shm_dir().join(name);
    assert!(!p.exists(), "{} left behind", p.display());
}

fn pair(name: &str, extra_prod: &[&str], extra_cons: &[&str]) -> (Out, Out) {
    let prod = peer("produce", name, extra_prod).spawn().unwrap();
    let cons = peer("consume", name, extra_cons).spawn().unwrap();
    let c = wait_out(cons);
    let p = wait_out(prod);
    (p, c)
}

#[test]
fn two_hundred_batches_arrive_byte_exact_and_in_order() {
    let name = unique("exact");
    let (p, c) = pair(&name, &["--batches", "200"], &["--batches", "200"]);
    assert_eq!(p.code, Some(0), "producer: {}", p.stderr);
    assert_eq!(c.code, Some(0), "consumer: {}", c.stderr);
    assert!(
        c.stdout.contains("verified 200 batches in order"),
        "{}",
        c.stdout
    );
    assert_gone(&name);
}

#[test]
fn four_writer_threads_fill_one_slot() {
    let name = unique("threads");
    let args = [
        "--batches",
        "200",
        "--threads",
        "4",
        "--batch-size",
        "16",
        "--slots",
        "3",
    ];
    let (p, c) = pair(&name, &args, &args);
    assert_eq!(p.code, Some(0), "producer: {}", p.stderr);
    assert_eq!(c.code, Some(0), "consumer: {}", c.stderr);
    assert!(
        c.stdout.contains("verified 200 batches in order"),
        "{}",
        c.stdout
    );
    assert_gone(&name);
}

#[test]
fn a_single_slot_ring_still_delivers_everything() {
    let name = unique("oneslot");
    let args = ["--batches", "50", "--slots", "1", "--threads", "2"];
    let (p, c) = pair(&name, &args, &args);
    assert_eq!(
        (p.code, c.code),
        (Some(0), Some(0)),
        "{} {}",
        p.stderr,
        c.stderr
    );
    assert!(c.stdout.contains("verified 50 batches"));
}

#[test]
fn killed_producer_is_reported_within_3s_and_leaves_nothing() {
    let name = unique("killprod");
    let mut prod = peer("produce", &name, &["--hold-ms", "300", "--batches", "1000"])
        .spawn()
        .unwrap();
    let mut cons = peer("consume", &name, &["--batches", "1000"])
        .spawn()
        .unwrap();
    // Wait until the consumer has verified a batch, so the producer is mid-stream (and mid-write:
    // it sleeps inside every sample).
    wait_line(&mut cons, "batch 0", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(150));
    let pid = prod.id();
    kill9(&prod);
    let (code, took) = wait_exit(&mut cons, Duration::from_secs(10));
    let err = stderr_of(&mut cons);
    let _ = prod.wait();
    assert!(
        took < Duration::from_secs(3),
        "consumer took {took:?} to notice"
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&format!("producer (pid {pid}) died")), "{err}");
    assert_gone(&name);
}

#[test]
fn killed_consumer_is_reported_within_3s_and_leaves_nothing() {
    let name = unique("killcons");
    let mut prod = peer("produce", &name, &["--batches", "1000"])
        .spawn()
        .unwrap();
    let mut cons = peer(
        "consume",
        &name,
        &["--batches", "1000", "--consume-delay-ms", "200"],
    )
    .spawn()
    .unwrap();
    wait_line(&mut cons, "batch 1", Duration::from_secs(20));
    let pid = cons.id();
    kill9(&cons);
    let (code, took) = wait_exit(&mut prod, Duration::from_secs(10));
    let err = stderr_of(&mut prod);
    let _ = cons.wait();
    assert!(
        took < Duration::from_secs(3),
        "producer took {took:?} to notice"
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&format!("consumer (pid {pid}) died")), "{err}");
    assert_gone(&name);
}

#[test]
fn stale_segment_is_reclaimed() {
    let name = unique("stale");
    // A producer that is killed while waiting for a consumer leaves its segment behind.
    let mut prod = peer("produce", &name, &[]).spawn().unwrap();
    wait_line(&mut prod, "ready", Duration::from_secs(20));
    kill9(&prod);
    let _ = prod.wait();
    assert!(
        shm_dir().join(&name).exists(),
        "the crash should leave the segment"
    );
    // The next run on the same name reclaims it and works.
    let (p, c) = pair(&name, &["--batches", "20"], &["--batches", "20"]);
    assert_eq!(
        (p.code, c.code),
        (Some(0), Some(0)),
        "{} {}",
        p.stderr,
        c.stderr
    );
    // Whichever side comes first clears the leftovers, and says so.
    let logs = format!("{}{}", p.stderr, c.stderr);
    assert!(
        logs.contains("reclaiming stale segment") || logs.contains("removed a stale segment"),
        "{logs}"
    );
    assert_gone(&name);
}

#[test]
fn consumer_of_a_stale_segment_gets_a_clear_error_and_cleans_up() {
    let name = unique("stalecons");
    let mut prod = peer("produce", &name, &[]).spawn().unwrap();
    wait_line(&mut prod, "ready", Duration::from_secs(20));
    let pid = prod.id();
    kill9(&prod);
    let _ = prod.wait();
    // The consumer removes the leftovers, keeps waiting for a live producer, and gives up with a
    // clear message when none comes.
    let c = wait_out(
        peer("consume", &name, &["--attach-timeout-s", "1"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(c.code, Some(2));
    assert!(
        c.stderr.contains("removed a stale segment") && c.stderr.contains(&format!("pid={pid}")),
        "{}",
        c.stderr
    );
    assert!(c.stderr.contains("timed out after"), "{}", c.stderr);
    assert_gone(&name);
}

#[test]
fn live_segment_is_refused() {
    let name = unique("live");
    let mut first = peer("produce", &name, &[]).spawn().unwrap();
    wait_line(&mut first, "ready", Duration::from_secs(20));
    let second = wait_out(peer("produce", &name, &[]).spawn().unwrap());
    assert_eq!(second.code, Some(2));
    assert!(
        second
            .stderr
            .contains(&format!("in use by a live producer (pid {})", first.id())),
        "{}",
        second.stderr
    );
    // The live segment is untouched: a consumer can still attach and read everything.
    let c = wait_out(peer("consume", &name, &[]).spawn().unwrap());
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert_eq!(wait_exit(&mut first, Duration::from_secs(20)).0, Some(0));
    assert_gone(&name);
}

#[test]
fn schema_mismatch_is_refused_and_shows_both_schemas() {
    let name = unique("schema");
    let mut prod = peer("produce", &name, &["--batch-size", "8"])
        .spawn()
        .unwrap();
    wait_line(&mut prod, "ready", Duration::from_secs(20));
    let c = wait_out(
        peer("consume", &name, &["--batch-size", "4"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(c.code, Some(2));
    assert!(c.stderr.contains("batch schema differs"), "{}", c.stderr);
    assert!(
        c.stderr.contains("batch 4") && c.stderr.contains("batch 8"),
        "{}",
        c.stderr
    );
    // The producer's segment was not damaged: the right consumer still gets every batch.
    let ok = wait_out(
        peer("consume", &name, &["--batch-size", "8"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let _ = prod.wait();
    assert_gone(&name);
}

/// A small tmpfs of our own when we may mount one (root in CI), else the real shm directory with a
/// request larger than the whole filesystem.
struct SmallTmpfs {
    dir: PathBuf,
    mounted: bool,
}

impl SmallTmpfs {
    fn new(tag: &str) -> SmallTmpfs {
        let dir =
            std::env::temp_dir().join(format!("proto-shm-tmpfs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        SmallTmpfs { dir, mounted }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let st = rustix_statvfs(dir);
    st.0 * st.1
}

fn rustix_statvfs(dir: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (st.f_bavail, st.f_frsize)
}

#[test]
fn too_small_shm_is_a_clear_error_not_a_sigbus() {
    let name = unique("nospace");
    let fs = SmallTmpfs::new("nospace");
    let (dir, side) = if fs.mounted {
        // 16 MiB filesystem, 10 MiB already taken: a 4-slot ring of ~1.9 MiB batches does not fit
        // in what is free, although it would fit in the filesystem's total size.
        std::fs::write(fs.dir.join("filler"), vec![1u8; 10 << 20]).unwrap();
        (fs.dir.clone(), 256usize)
    } else {
        // Cannot mount here: ask for more than the whole shm directory holds.
        let free = free_bytes(&shm_dir());
        let side = (((free / 4 / 8 / 6) as f64).sqrt() as usize) + 64;
        (shm_dir(), side)
    };
    let side_s = side.to_string();
    let out = Command::new(PEER)
        .args([
            "produce", "--name", &name, "--side", &side_s, "--slots", "4",
        ])
        .env("PROTO_SHM_DIR", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not enough shared memory"), "{err}");
    assert!(!dir.join(&name).exists());
}

#[test]
fn invalid_names_are_rejected() {
    for bad in ["", "../etc", "a/b", ".hidden", "spa ce"] {
        let out = Command::new(PEER)
            .args(["produce", "--name", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains("invalid segment name"), "{err}");
    }
}

#[test]
fn segment_file_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique("perm");
    let mut prod = peer("produce", &name, &["--batches", "5"]).spawn().unwrap();
    wait_line(&mut prod, "ready", Duration::from_secs(20));
    let mode = std::fs::metadata(shm_dir().join(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let c = wait_out(peer("consume", &name, &["--batches", "5"]).spawn().unwrap());
    assert_eq!(c.code, Some(0));
    let _ = prod.wait();
}
