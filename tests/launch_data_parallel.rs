//! Data-parallel training through `launch` with the real loaders (Gloo on CPU): a 2-rank MoCo v2
//! run (cross-rank shuffle-BN, queue fed by both ranks) trains end to end with rank 0 writing the
//! run's files; the same run as two "nodes" on this machine (`--nnodes 2`, rendezvous through
//! 127.0.0.1) logs the same losses; a 2-rank run resumes exactly; and SIGKILL of one rank's
//! trainer ends every side within seconds, naming it, with nothing left in the segment folder.
//! (`trainer/tests/data_parallel.rs` checks the numbers against one process on the whole batch.)
#![cfg(feature = "tch")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A small MoCo v2 (R-18, 32² views, batch 4 per rank), one trainer thread per rank, segments in
/// `dir/segments` so that leftovers can be checked.
fn config(dir: &Path) -> PathBuf {
    let shm = dir.join("segments");
    std::fs::create_dir_all(&shm).unwrap();
    let p = dir.join("run.ron");
    std::fs::write(
        &p,
        format!(
            r#"RunConfig(
    name: "dp", seed: 5,
    dataset: (root: "{}", layout: Flat, max_images: 64),
    loader: (workers: 1, ring_slots: 3, batch_size: 4, shm_dir: "{}"),
    method: MocoV2(view: (size: 32), proj_hidden: 64, proj_dim: 32, queue_size: 64, key_bn: ShuffledSubBatches(1)),
    trainer: (arch: ResNet18, threads: Some(1), epochs: 500, optimizer: Sgd(lr: 0.03, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 8, schedule: Constant, checkpoint_every: 1000),
)"#,
            common::photos().display(),
            shm.display()
        ),
    )
    .unwrap();
    p
}

fn assert_same(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-5 * y.abs().max(1.0),
            "{what}: {a:?} vs {b:?}"
        );
    }
}

fn port_arg(port: u16) -> String {
    port.to_string()
}

#[test]
fn two_ranks_train_as_one_node_or_two_and_resume_exactly() {
    let dir = common::tempdir("dp", "launch");
    let cfg = config(&dir);
    // One node, two ranks.
    let port = port_arg(free_port());
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["--nproc-per-node", "2", "--master-port", &port];
        args.extend_from_slice(extra);
        let o = common::launch_command(&cfg, &dir.join(out), &args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        o
    };
    let o = run("one-node", &["--max-steps", "6"]);
    let t = common::text(&o);
    assert!(
        t.contains("launch: rank 0: loader pid") && t.contains("launch: rank 1: loader pid"),
        "{t}"
    );
    let one_node = common::metric_losses(&dir.join("one-node/metrics.jsonl"));
    assert_eq!(one_node.len(), 6);
    assert!(one_node.iter().all(|l| l.is_finite()), "{one_node:?}");
    for f in ["last.ckpt", "backbone.record", "loss.png"] {
        assert!(
            dir.join("one-node").join(f).exists(),
            "rank 0 did not write {f}"
        );
    }

    // Two "nodes" of one rank each, rendezvous through 127.0.0.1: the same ranks, the same run.
    let port2 = port_arg(free_port());
    let node = |r: &str| {
        common::launch_command(
            &cfg,
            &dir.join("two-nodes"),
            &[
                "--nnodes",
                "2",
                "--node-rank",
                r,
                "--nproc-per-node",
                "1",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                &port2,
                "--max-steps",
                "6",
            ],
        )
        .spawn()
        .unwrap()
    };
    let (n0, n1) = (node("0"), node("1"));
    let (o0, o1) = (
        n0.wait_with_output().unwrap(),
        n1.wait_with_output().unwrap(),
    );
    assert!(
        o0.status.success() && o1.status.success(),
        "{}\n{}",
        common::text(&o0),
        common::text(&o1)
    );
    assert_same(
        "two nodes vs one node",
        &common::metric_losses(&dir.join("two-nodes/metrics.jsonl")),
        &one_node,
    );

    // Exact resume of a 2-rank run: 3 steps, then on to 6 from its checkpoint.
    run("split", &["--max-steps", "3"]);
    let ck = dir.join("split/last.ckpt");
    run(
        "split",
        &["--max-steps", "6", "--resume", ck.to_str().unwrap()],
    );
    assert_same(
        "resumed",
        &common::metric_losses(&dir.join("split/metrics.jsonl")),
        &one_node,
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("segments")).unwrap().collect();
    assert!(left.is_empty(), "segments left behind: {left:?}");
}

#[test]
fn killing_one_rank_ends_every_side() {
    let dir = common::tempdir("dp", "kill");
    let cfg = config(&dir);
    let port = port_arg(free_port());
    let mut child = common::launch_command(
        &cfg,
        &dir.join("out"),
        &[
            "--nproc-per-node",
            "2",
            "--master-port",
            &port,
            "--max-steps",
            "100000",
        ],
    )
    .env("RUST_LOG", "info")
    .spawn()
    .unwrap();
    // Wait until rank 1 trains (its first step logged), then kill its trainer.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let mut all = lines.lock().unwrap();
                all.push_str(&l);
                all.push('\n');
            }
        });
    }
    let started = Instant::now();
    let pid = loop {
        let all = lines.lock().unwrap().clone();
        let pid = all
            .lines()
            .find_map(|l| l.strip_prefix("launch: rank 1: loader pid"))
            .and_then(|l| l.split("trainer pid ").nth(1))
            .and_then(|l| l.split(',').next())
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            if all.contains("[trainer 1]") && all.contains("step=1 ") {
                break pid;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rank 1 never trained: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the trainer process launch started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Every side ends within 10 s of the kill.
    let (status, _) = common::wait_for_exit(&mut child, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let all = lines.lock().unwrap().clone();
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "launch: trainer 1 (pid {pid}) failed with SIGKILL"
        )),
        "launch does not name the dead rank: {all}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("segments")).unwrap().collect();
    assert!(left.is_empty(), "segments left behind: {left:?}");
}
