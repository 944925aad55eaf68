//! A stand-in trainer for loader tests: attaches to the loader's ring with the schema the run's
//! config implies, checks every batch (shapes come from the schema; value ranges, distinct views,
//! index and label ranges are checked here), and prints one digest line per batch so tests can
//! compare streams byte for byte.
//!
//! Exit codes: 0 ok, 1 a check failed, 3 the loader is gone (died or failed).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use config::RunConfig;
use proto_shm::{Consumer, ShmOptions};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    config: std::path::PathBuf,
    #[arg(long)]
    shm_name: String,
    /// Stop (and close the ring) after this many batches.
    #[arg(long)]
    max_batches: Option<u64>,
    /// Sleep this long per batch (a slow trainer).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let a = Args::parse();
    let run = RunConfig::from_file(&a.config).expect("config");
    let views = loader::views::for_run(&run).expect("views");
    let schema = views.schema(run.loader.batch_size);
    let opts = ShmOptions {
        attach_timeout: Duration::from_secs(15),
        ..ShmOptions::default()
    };
    let mut consumer = match Consumer::open(&a.shm_name, &schema, &opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inspect: error: {e}");
            return ExitCode::from(if e.is_peer_gone() { 3 } else { 1 });
        }
    };
    let b = run.loader.batch_size;
    // The first two image tensors (u8 [h, w, 3]): view0/view1, or SoCo's view1/view2.
    let images: Vec<usize> = schema
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.dtype == proto_shm::DType::U8 && t.shape.len() == 3 && t.shape[2] == 3)
        .map(|(i, _)| i)
        .collect();
    let (first, second) = (images[0], images[1]);
    let (mut batches, mut differ) = (0u64, 0u64);
    loop {
        let batch = match consumer.next_batch() {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                eprintln!("inspect: error: {e}");
                return ExitCode::from(if e.is_peer_gone() { 3 } else { 1 });
            }
        };
        let (v0, v1) = (batch.tensor(first), batch.tensor(second));
        let idx = batch.tensor_by_name("index").unwrap();
        let per = v0.len() / b;
        for i in 0..b {
            let (a0, a1) = (&v0[i * per..(i + 1) * per], &v1[i * per..(i + 1) * per]);
            let (lo, hi) = (a0.iter().min().unwrap(), a0.iter().max().unwrap());
            if lo == hi {
                eprintln!(
                    "inspect: batch {} sample {i}: view0 is a flat image ({lo})",
                    batch.seq()
                );
                return ExitCode::from(1);
            }
            differ += (a0 != a1) as u64;
            let index = i64::from_le_bytes(idx[i * 8..i * 8 + 8].try_into().unwrap());
            if index < 0 {
                eprintln!("inspect: negative index");
                return ExitCode::from(1);
            }
        }
        let mut h = 0u64;
        for t in 0..consumer_tensors(&schema) {
            h = h.rotate_left(7) ^ digest(batch.tensor(t));
        }
        println!(
            "batch {} epoch {} index {} digest {h:016x}",
            batch.seq(),
            batch.meta().epoch,
            batch.meta().index_in_epoch
        );
        drop(batch);
        batches += 1;
        if a.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(a.delay_ms));
        }
        if a.max_batches.is_some_and(|m| batches >= m) {
            break;
        }
    }
    println!(
        "inspected {batches} batches, {} samples; views differ in {differ}",
        batches * b as u64
    );
    ExitCode::SUCCESS
}

fn consumer_tensors(schema: &proto_shm::Schema) -> usize {
    schema.tensors.len()
}
