//! `precompute-proposals` killed with SIGKILL mid-run and started again ends with a store
//! byte-identical to an uninterrupted run's; the store reads back and round-trips through SoCo's JSON.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos")
}

fn run(out: &PathBuf) -> Command {
    let mut c = Command::new(common::workspace_bin("tools", "precompute-proposals"));
    c.args([
        "run",
        "--workers",
        "2",
        "--limit",
        "48",
        "--block-images",
        "8",
        "--data",
    ])
    .arg(photos())
    .arg("--out")
    .arg(out);
    c.env("DENSEPRE_CACHE_DIR", out.with_extension("cache"));
    c
}

#[test]
fn killed_precompute_resumes_to_an_identical_store() {
    let dir = common::tempdir("precompute-kill", "store");
    let (full, resumed) = (dir.join("full.pstore"), dir.join("resumed.pstore"));
    assert!(run(&full).output().unwrap().status.success());

    let mut child = run(&resumed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once at least two blocks are on disk (and the run is not finished).
    let t = Instant::now();
    loop {
        let len = std::fs::metadata(&resumed).map(|m| m.len()).unwrap_or(0);
        if len > 1200 || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let partial = std::fs::read(&resumed).unwrap();
    assert!(
        partial.len() < std::fs::read(&full).unwrap().len(),
        "killed too late to test resuming"
    );
    let out = run(&resumed).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resuming"));
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&resumed).unwrap(),
        "stores differ"
    );

    // The store reads back, and SoCo's JSON round trip keeps every box.
    let store = loader::proposals::ProposalStore::open(&full).unwrap();
    assert!(store.complete);
    assert_eq!(store.len(), 48);
    let json = dir.join("props.json");
    let bin = common::workspace_bin("tools", "precompute-proposals");
    assert!(Command::new(&bin)
        .args(["export", "--store"])
        .arg(&full)
        .arg("--json")
        .arg(&json)
        .status()
        .unwrap()
        .success());
    let back = dir.join("back.pstore");
    assert!(Command::new(&bin)
        .args(["import", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(&back)
        .status()
        .unwrap()
        .success());
    let back = loader::proposals::ProposalStore::open(&back).unwrap();
    assert_eq!(back.len(), 48);
    for k in store.keys() {
        let base = std::path::Path::new(k)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            store.get(k).unwrap().unwrap().boxes,
            back.get(&base).unwrap().unwrap().boxes
        );
    }
}
