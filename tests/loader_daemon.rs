//! The loader daemon as a real process feeding a real consumer process through the ring:
//! end to end on the shared photos, byte-identical streams for any worker count, exact resume,
//! bad files in a dataset, one-line errors, signals and a dead consumer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const INSPECT: &str = env!("CARGO_BIN_EXE_ring-inspect");

fn loader_bin() -> PathBuf {
    common::workspace_bin("loader", "loader")
}

fn tempdir(tag: &str) -> common::Scratch {
    common::tempdir("loader-e2e", tag)
}

fn write_config(
    dir: &Path,
    root: &Path,
    layout: &str,
    batch: usize,
    workers: usize,
    epochs: usize,
) -> PathBuf {
    write_method_config(
        dir,
        root,
        layout,
        batch,
        workers,
        epochs,
        "MocoV2(view: (size: 96))",
    )
}

fn write_method_config(
    dir: &Path,
    root: &Path,
    layout: &str,
    batch: usize,
    workers: usize,
    epochs: usize,
    method: &str,
) -> PathBuf {
    let p = dir.join("run.ron");
    std::fs::write(
        &p,
        format!(
            r#"RunConfig(
    name: "e2e",
    seed: 3,
    dataset: (root: "{}", layout: {layout}),
    loader: (workers: {workers}, ring_slots: 3, batch_size: {batch}),
    method: {method},
    trainer: (epochs: {epochs}),
)"#,
            root.display()
        ),
    )
    .unwrap();
    p
}

fn loader(cfg: &Path, name: &str, extra: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(loader_bin());
    c.arg("--config")
        .arg(cfg)
        .args(["--shm-name", name])
        .args(extra);
    c.env("DENSEPRE_CACHE_DIR", cache).env("RUST_LOG", "warn");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn inspect(cfg: &Path, name: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(INSPECT);
    c.arg("--config")
        .arg(cfg)
        .args(["--shm-name", name])
        .args(extra);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a loader/consumer pair to the end; returns both outputs.
fn pair(cfg: &Path, name: &str, loader_args: &[&str], cache: &Path) -> (Output, Output) {
    let l = loader(cfg, name, loader_args, cache).spawn().unwrap();
    let i = inspect(cfg, name, &[]).spawn().unwrap();
    let io = i.wait_with_output().unwrap();
    let lo = l.wait_with_output().unwrap();
    (lo, io)
}

/// Both the loader and the consumer exited 0; otherwise shows both sides' stderr.
fn assert_both_ok(lo: &Output, io: &Output) {
    assert_eq!(
        (lo.status.code(), io.status.code()),
        (Some(0), Some(0)),
        "loader: {}\nconsumer: {}",
        text(&lo.stderr),
        text(&io.stderr)
    );
}

fn digests(out: &Output) -> Vec<String> {
    // "batch <seq> epoch <e> index <i> digest <d>" → "<e> <i> <d>", independent of the sequence.
    text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("batch "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[3], f[5], f[7])
        })
        .collect()
}

fn assert_no_segment(name: &str) {
    assert!(
        !Path::new("/dev/shm").join(name).exists(),
        "segment {name} left behind"
    );
}

#[test]
fn loader_feeds_a_consumer_process_end_to_end() {
    let dir = tempdir("e2e");
    let cfg = write_config(&dir, &common::photos(), "Flat", 16, 2, 1);
    let name = format!("e2e-loader-{}", std::process::id());
    let (lo, io) = pair(&cfg, &name, &["--max-batches", "6"], &dir);
    assert_eq!(io.status.code(), Some(0), "{}", text(&io.stderr));
    assert_eq!(lo.status.code(), Some(0), "{}", text(&lo.stderr));
    let out = text(&io.stdout);
    assert!(
        out.contains("inspected 6 batches, 96 samples; views differ in 96"),
        "{out}"
    );
    let summary = text(&lo.stdout);
    assert!(
        summary.contains("loader summary: 6 batches, 96 samples")
            && summary.contains("no image skipped"),
        "{summary}"
    );
    assert_no_segment(&name);
}

#[test]
fn stream_is_byte_identical_for_1_and_3_workers() {
    let dir = tempdir("det");
    let name = format!("e2e-det-{}", std::process::id());
    // MoCo v2; SoCo (on-the-fly proposals, boxes, ids, levels); CP² (backgrounds from other images).
    for (tag, method, batches) in [
        ("moco", "MocoV2(view: (size: 96))", 5),
        ("soco", "Soco(image_size: 96, v3_size: 48)", 3),
        ("cp2", "Cp2(view: (size: 96))", 3),
    ] {
        let mut runs = Vec::new();
        for workers in [1, 3] {
            let cfg = write_method_config(&dir, &common::photos(), "Flat", 8, workers, 1, method);
            let (lo, io) = pair(
                &cfg,
                &format!("{name}-{tag}-{workers}"),
                &["--max-batches", &batches.to_string()],
                &dir,
            );
            assert_both_ok(&lo, &io);
            runs.push(digests(&io));
        }
        assert_eq!(runs[0].len(), batches, "{tag}");
        assert_eq!(runs[0], runs[1], "{tag}: 1 and 3 workers differ");
    }
}

#[test]
fn resume_mid_epoch_reproduces_the_stream() {
    let dir = tempdir("resume");
    let cfg = write_config(&dir, &common::photos(), "Flat", 16, 2, 2);
    let name = format!("e2e-resume-{}", std::process::id());
    // 254 images / 16 = 15 batches per epoch; the full run crosses into epoch 1.
    let (lo, io) = pair(
        &cfg,
        &format!("{name}-full"),
        &["--max-batches", "20"],
        &dir,
    );
    assert_both_ok(&lo, &io);
    let full = digests(&io);
    assert_eq!(full.len(), 20);
    let (lo, io) = pair(
        &cfg,
        &format!("{name}-tail"),
        &[
            "--start-epoch",
            "0",
            "--start-batch",
            "12",
            "--max-batches",
            "8",
        ],
        &dir,
    );
    assert_both_ok(&lo, &io);
    assert_eq!(digests(&io), full[12..20].to_vec());
}

#[test]
fn bad_files_are_skipped_counted_named_and_batches_stay_full() {
    let dir = tempdir("bad");
    let root = dir.join("data");
    let class = root.join("train/n0001");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::create_dir_all(root.join("train/n0002_empty")).unwrap();
    for (i, e) in std::fs::read_dir(common::photos())
        .unwrap()
        .take(40)
        .enumerate()
    {
        std::fs::copy(e.unwrap().path(), class.join(format!("good{i:02}.JPEG"))).unwrap();
    }
    let good = std::fs::read(class.join("good00.JPEG")).unwrap();
    std::fs::write(class.join("truncated.JPEG"), &good[..good.len() / 3]).unwrap();
    std::fs::write(class.join("empty.JPEG"), b"").unwrap();
    std::fs::write(class.join("text.JPEG"), b"hello").unwrap();
    let cfg = write_config(&dir, &root, "ImageFolder(split: \"train\")", 8, 2, 1);
    let name = format!("e2e-bad-{}", std::process::id());
    let (lo, io) = pair(&cfg, &name, &[], &dir);
    let (err, out) = (text(&lo.stderr), text(&lo.stdout));
    assert_eq!(lo.status.code(), Some(0), "{err}");
    assert_eq!(io.status.code(), Some(0), "{}", text(&io.stderr));
    // 43 images / 8 = 5 full batches.
    assert!(
        text(&io.stdout).contains("inspected 5 batches, 40 samples"),
        "{}",
        text(&io.stdout)
    );
    // Each skipped file is named once in the log with its reason, and only bad files are named.
    let named: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("skipping image"))
        .collect();
    assert!(!named.is_empty(), "{err}");
    for line in &named {
        assert!(
            ["truncated.JPEG", "empty.JPEG", "text.JPEG"]
                .iter()
                .any(|f| line.contains(f)),
            "a good file was skipped: {line}"
        );
    }
    let skipped: u64 = out
        .split("skipped ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("summary counts skipped files");
    assert!(skipped >= named.len() as u64, "{out}");
    assert!(err.contains("class folder holds no image"), "{err}");
    assert_no_segment(&name);
}

#[test]
fn missing_root_is_a_one_line_error() {
    let dir = tempdir("noroot");
    let cfg = write_config(&dir, Path::new("/nonexistent/imagenet"), "Flat", 8, 1, 1);
    let out = loader(&cfg, "e2e-noroot", &[], &dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.trim(),
        "loader: error: dataset root /nonexistent/imagenet does not exist or is not a directory"
    );
}

/// Command-line values get the config's checks (`--workers 0` like `workers: 0`), and a config
/// that cannot be read says the OS error once.
#[test]
fn command_line_values_are_checked_and_errors_said_once() {
    let dir = tempdir("cli");
    let cfg = write_config(&dir, &common::photos(), "Flat", 8, 1, 1);
    let out = loader(&cfg, "e2e-cli", &["--workers", "0"], &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "loader: error: loader command line: field `loader.workers`: must be at least 1"
    );
    let out = Command::new(loader_bin())
        .args(["--config", "/nonexistent/run.ron"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn empty_dataset_is_a_one_line_error() {
    let dir = tempdir("nofiles");
    let root = dir.join("data");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = write_config(&dir, &root, "Flat", 8, 1, 1);
    let out = loader(&cfg, "e2e-nofiles", &[], &dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .trim()
            .starts_with("loader: error: no images found under"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sigterm_stops_the_loader_and_tells_the_consumer() {
    let dir = tempdir("sigterm");
    let cfg = write_config(&dir, &common::photos(), "Flat", 8, 1, 5);
    let name = format!("e2e-sigterm-{}", std::process::id());
    let mut l = loader(&cfg, &name, &[], &dir).spawn().unwrap();
    let i = inspect(&cfg, &name, &["--delay-ms", "100"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    unsafe { libc::kill(l.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = l.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    let io = i.wait_with_output().unwrap();
    assert_eq!(io.status.code(), Some(3));
    assert!(
        text(&io.stderr).contains("loader stopped by SIGTERM"),
        "{}",
        text(&io.stderr)
    );
    assert_no_segment(&name);
}

#[test]
fn killed_consumer_stops_the_loader_within_3s() {
    let dir = tempdir("killcons");
    let cfg = write_config(&dir, &common::photos(), "Flat", 8, 1, 5);
    let name = format!("e2e-killcons-{}", std::process::id());
    let mut l = loader(&cfg, &name, &[], &dir).spawn().unwrap();
    let mut i = inspect(&cfg, &name, &["--delay-ms", "100"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    i.kill().unwrap(); // SIGKILL
    let _ = i.wait();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = l.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "loader did not notice"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(3));
    assert_no_segment(&name);
}
