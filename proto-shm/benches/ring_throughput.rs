//! Bytes/s through the ring between two processes ÷ the same writes and reads in one process with no
//! ring, for MoCo-sized batches (64 samples × 2 views × 224×224×3 u8). Run: `cargo bench -p proto-shm`.
//!
//! Producer: for each sample, copy a prepared 224×224×3 view into the slot (what a loader worker does
//! with its output), twice. Consumer: read every byte of the batch once (a checksum), release.
//! Baseline: the same copy and the same checksum into one preallocated buffer, one thread.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use proto_shm::{BatchMeta, Consumer, DType, Producer, Schema, ShmOptions};

const BATCH: usize = 64;
const SIDE: usize = 224;
const BATCHES: u64 = 150;
const ROUNDS: usize = 3;

fn schema() -> Schema {
    Schema::new("bench", BATCH)
        .tensor("view0", DType::U8, &[SIDE, SIDE, 3])
        .tensor("view1", DType::U8, &[SIDE, SIDE, 3])
}

fn checksum(bytes: &[u8]) -> u64 {
    // Word-wise sum: memory-bound like any consumer that reads the batch once.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let mut s = 0u64;
    for w in words {
        s = s.wrapping_add(*w);
    }
    for b in head.iter().chain(tail) {
        s = s.wrapping_add(*b as u64);
    }
    s
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn source_view(seed: u8) -> Vec<u8> {
    (0..SIDE * SIDE * 3)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn batch_bytes() -> usize {
    BATCH * 2 * SIDE * SIDE * 3
}

/// `buffers` = 1: the plain one-process loop. `buffers` = slots: the same loop rotating over as many
/// batch buffers as the ring has slots, i.e. the same memory footprint (and cache misses).
fn baseline(buffers: usize) -> f64 {
    let views = [source_view(1), source_view(2)];
    let sample = SIDE * SIDE * 3;
    let mut bufs: Vec<Vec<u8>> = (0..buffers).map(|_| vec![1u8; batch_bytes()]).collect();
    let start = Instant::now();
    let mut total = 0u64;
    for seq in 0..BATCHES {
        let buf = &mut bufs[seq as usize % buffers];
        for (t, view) in views.iter().enumerate() {
            for i in 0..BATCH {
                let off = (t * BATCH + i) * sample;
                buf[off..off + sample].copy_from_slice(view);
            }
        }
        total = total.wrapping_add(checksum(black_box(&buf[..])));
    }
    black_box(total);
    (BATCHES as f64 * batch_bytes() as f64) / start.elapsed().as_secs_f64()
}

fn ring(round: usize, slots: usize) -> (f64, f64, f64) {
    let name = format!("proto-shm-bench-{}-{slots}-{round}", std::process::id());
    let producer =
        Producer::create(&name, &schema(), slots, &ShmOptions::default()).expect("create segment");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("PROTO_SHM_BENCH_CONSUMER", &name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    let views = [source_view(1), source_view(2)];
    // Fill the ring once before timing so both processes have faulted the slots in.
    let warm = slots as u64;
    let mut start = Instant::now();
    for seq in 0..BATCHES + warm {
        if seq == warm {
            start = Instant::now();
        }
        let slot = producer.claim(BatchMeta::default()).expect("claim");
        for i in 0..BATCH {
            let mut w = slot.sample(i).unwrap();
            for (t, view) in views.iter().enumerate() {
                w.tensor_mut(t).copy_from_slice(view);
            }
            w.commit().unwrap();
        }
    }
    producer.finish().expect("finish");
    let elapsed = start.elapsed().as_secs_f64();
    let prod_rss = peak_rss_mib();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    child.wait().unwrap();
    let cons_rss: f64 = line.trim().parse().unwrap();
    (
        (BATCHES as f64 * batch_bytes() as f64) / elapsed,
        prod_rss,
        cons_rss,
    )
}

fn consumer(name: &str) {
    let mut c = Consumer::open(name, &schema(), &ShmOptions::default()).expect("open");
    let mut total = 0u64;
    while let Some(b) = c.next_batch().expect("next") {
        total = total.wrapping_add(checksum(b.tensor(0)));
        total = total.wrapping_add(checksum(b.tensor(1)));
    }
    black_box(total);
    println!("{}", peak_rss_mib());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if let Ok(name) = std::env::var("PROTO_SHM_BENCH_CONSUMER") {
        return consumer(&name);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gib = |x: f64| x / (1u64 << 30) as f64;
    println!(
        "ring throughput: batch {BATCH}x2x{SIDE}x{SIDE}x3 u8 ({:.1} MiB), {BATCHES} batches, median of {ROUNDS} interleaved rounds",
        batch_bytes() as f64 / (1u64 << 20) as f64
    );
    for slots in [2usize, 4] {
        let (mut one, mut same, mut through) = (Vec::new(), Vec::new(), Vec::new());
        let mut rss = (0.0f64, 0.0f64);
        for round in 0..ROUNDS {
            // Interleave so machine noise hits all three alike.
            one.push(baseline(1));
            same.push(baseline(slots));
            let (r, p, c) = ring(round, slots);
            through.push(r);
            rss = (rss.0.max(p), rss.1.max(c));
        }
        let (one, same, r) = (median(one), median(same), median(through));
        println!(
            "{slots} slots ({:.0} MiB ring):",
            (slots * batch_bytes()) as f64 / (1u64 << 20) as f64
        );
        println!("  one process, one buffer         : {:6.2} GiB/s", gib(one));
        println!(
            "  one process, {slots} buffers       : {:6.2} GiB/s  (the ring's footprint)",
            gib(same)
        );
        println!("  ring, producer + consumer procs : {:6.2} GiB/s", gib(r));
        println!("  ratio ring / one buffer         : {:6.2}", r / one);
        println!("  ratio ring / same footprint     : {:6.2}", r / same);
        println!(
            "  peak RSS: producer {:.0} MiB, consumer {:.0} MiB (the mapped ring counts in both)",
            rss.0, rss.1
        );
    }
}
