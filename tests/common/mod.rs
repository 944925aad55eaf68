//! Helpers shared by the cross-process tests.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Path of a workspace binary from another package (cargo only builds this package's binaries for
/// its tests). Runs `cargo build` for it once per test process, so the binary is never stale.
#[allow(dead_code)]
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join(name);
    let mut built = BUILT.lock().unwrap();
    let built = built.get_or_insert_with(HashSet::new);
    if built.insert(format!("{package}/{name}")) {
        let profile = dir.file_name().unwrap().to_string_lossy().into_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", package, "--bin", name]);
        // What cargo sets for this test process describes the e2e-tests crate, not the build:
        // a build script that reruns when one changes (ring's watches CARGO_MANIFEST_DIR) would
        // see it appear here and vanish in the next plain cargo command, rebuilding ring → torch-sys
        // → burn-tch → burn → trainer back and forth, minutes each time.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || matches!(
                    &*key,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "OUT_DIR"
                )
            {
                cmd.env_remove(&*key);
            }
        }
        if name == "launch" || name == "evaluate" {
            // launch runs the loader and trainer binaries beside it: they must be current too.
            cmd.args([
                "-p", "loader", "--bin", "loader", "-p", "trainer", "--bin", "trainer",
            ]);
        }
        if profile == "release" {
            cmd.arg("--release");
        }
        if cfg!(feature = "tch") && package != "loader" {
            // The same trainer features as this test build (trainer, and tools, which depends on
            // it), so cargo reuses its artifacts instead of relinking back and forth. `loader`
            // alone does not depend on the trainer and would reject the flag.
            cmd.args(["--features", "trainer/tch"]);
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building {name} failed");
    }
    bin
}

/// The shared real photos (tests may read ../shared/data; the product never does).
#[allow(dead_code)]
pub fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos")
}

/// A fresh scratch folder for one test (`<prefix>-<tag>-<random>` under the temp dir). Removed when
/// the test ends — the runs here write checkpoints of 170 MB, which CI's disk cannot keep for the
/// whole suite — except when the test fails: then it stays for inspection and its path is printed.
#[allow(dead_code)]
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!(
                "test failed: its files are kept in {}",
                self.0.path().display()
            );
        }
    }
}

#[allow(dead_code)]
pub fn tempdir(prefix: &str, tag: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("{prefix}-{tag}-"))
            .tempdir()
            .expect("create a scratch folder in the temp dir"),
    )
}

/// The loader's and trainer's pids and the segment name, from `launch`'s first line (the rest of
/// its stdout is drained in the background).
#[allow(dead_code)]
pub fn child_pids(launch_out: &mut std::process::Child) -> (u32, u32, String) {
    use std::io::{BufRead, BufReader};
    let stdout = launch_out.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // "launch: loader pid L, trainer pid T, segment S" — the children's forwarded output may come first.
    let line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("launch: loader pid"))
        .expect("launch printed its children's pids");
    let f: Vec<&str> = line.split_whitespace().collect();
    let l = f[3].trim_end_matches(',').parse().unwrap();
    let t = f[6].trim_end_matches(',').parse().unwrap();
    let seg = f[8].to_string();
    std::thread::spawn(move || for _ in lines {});
    (l, t, seg)
}

/// Whether `pid` is gone or a zombie (reaped by nobody yet).
#[allow(dead_code)]
pub fn pid_is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

/// SIGKILLs one side of a running `launch` (0: loader, 1: trainer; stdout and stderr piped) 2.5 s
/// in, then checks what pretraining and fine-tuning alike promise: `launch` ends within 5 s with
/// exit 1, naming the dead side and its pid, no segment is left in /dev/shm, and neither child
/// survives.
#[allow(dead_code)]
pub fn kill_side_and_check(mut launch: std::process::Child, which: usize) {
    use std::io::Read;
    use std::time::Duration;
    let (loader, trainer, seg) = child_pids(&mut launch);
    std::thread::sleep(Duration::from_millis(2500));
    let victim = if which == 0 { loader } else { trainer };
    // SAFETY: kill(2) on a pid this test's launch spawned.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let (status, took) = wait_for_exit(&mut launch, Duration::from_secs(15));
    let mut err = String::new();
    launch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(took < Duration::from_secs(5), "pair took {took:?} to end");
    assert_eq!(status.code(), Some(1), "{err}");
    let side = if which == 0 { "loader" } else { "trainer" };
    assert!(
        err.contains(&format!("launch: {side} (pid {victim}) failed")),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/dev/shm").join(&seg).exists(),
        "segment left behind"
    );
    for pid in [loader, trainer] {
        assert!(
            // SAFETY: signal 0 only checks that the pid exists.
            unsafe { libc::kill(pid as i32, 0) } != 0 || pid_is_zombie(pid),
            "pid {pid} still alive"
        );
    }
}

/// A finished command's stdout then stderr, for assertion messages.
#[allow(dead_code)]
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `loss` of every step in a run's metrics.jsonl.
#[allow(dead_code)]
pub fn metric_losses(metrics: &Path) -> Vec<f64> {
    std::fs::read_to_string(metrics)
        .unwrap_or_else(|e| panic!("{}: {e}", metrics.display()))
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// `launch --config cfg --out-dir out extra…` with the loader and trainer built beside it,
/// quiet logs, a cache under `out` and both streams piped.
#[allow(dead_code)]
pub fn launch_command(cfg: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    workspace_bin("loader", "loader");
    workspace_bin("trainer", "trainer");
    let mut c = std::process::Command::new(workspace_bin("tools", "launch"));
    c.arg("--config")
        .arg(cfg)
        .arg("--out-dir")
        .arg(out)
        .args(extra)
        .env("RUST_LOG", "warn")
        .env("DENSEPRE_CACHE_DIR", out.join("cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// Waits for `child` to end, failing the test if it is still running after `limit`; returns its
/// status and how long it took.
#[allow(dead_code)]
pub fn wait_for_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> (std::process::ExitStatus, std::time::Duration) {
    let t = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, t.elapsed());
        }
        assert!(t.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
