//! A test peer for the ring: produces or consumes batches whose every byte derives from
//! (seed, batch, sample, tensor), so the consumer can verify each byte and the order without any
//! shared state but the segment. Fault tests kill it with SIGKILL at chosen moments.
//!
//! Exit codes: 0 ok, 2 error on this side, 3 the peer is gone (died, closed, or failed).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use proto_shm::{BatchMeta, Consumer, DType, Producer, Schema, ShmError, ShmOptions};

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Produce,
    Consume,
}

#[derive(Parser)]
struct Args {
    role: Role,
    #[arg(long)]
    name: String,
    #[arg(long, default_value_t = 200)]
    batches: u64,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Writer threads sharing each slot (producer).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Sleep this long in the middle of writing each sample (to be killed mid-write).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Sleep this long while holding each batch (consumer).
    #[arg(long, default_value_t = 0)]
    consume_delay_ms: u64,
    /// Image side of the two view tensors.
    #[arg(long, default_value_t = 32)]
    side: usize,
    #[arg(long, default_value_t = 30)]
    attach_timeout_s: u64,
}

fn schema(a: &Args) -> Schema {
    Schema::new("ring-test", a.batch_size)
        .attr("max_boxes", 4)
        .tensor("view0", DType::U8, &[a.side, a.side, 3])
        .tensor("view1", DType::U8, &[a.side, a.side, 3])
        .tensor("boxes", DType::F32, &[4, 4])
        .tensor("label", DType::I64, &[1])
}

/// splitmix64: a fast, well-mixed stream, reproducible from the seed alone.
fn fill(buf: &mut [u8], seed: u64, seq: u64, sample: usize, tensor: usize) {
    let mut state = seed
        ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ ((sample as u64) << 32)
        ^ ((tensor as u64) << 48);
    for chunk in buf.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn opts(a: &Args) -> ShmOptions {
    ShmOptions {
        attach_timeout: Duration::from_secs(a.attach_timeout_s),
        ..ShmOptions::default()
    }
}

fn produce(a: &Args) -> Result<(), ShmError> {
    let producer = Producer::create(&a.name, &schema(a), a.slots, &opts(a))?;
    println!("ready pid {}", std::process::id());
    let tensors = producer.layout().tensors.len();
    for seq in 0..a.batches {
        let slot = producer.claim(BatchMeta {
            epoch: seq / 10,
            index_in_epoch: seq % 10,
        })?;
        // Samples i, i+threads, ... go to thread i: every thread writes into the same slot.
        std::thread::scope(|s| -> Result<(), ShmError> {
            let handles: Vec<_> = (0..a.threads)
                .map(|t| {
                    let slot = slot.clone();
                    s.spawn(move || -> Result<(), ShmError> {
                        for i in (t..a.batch_size).step_by(a.threads) {
                            let mut w = slot.sample(i)?;
                            for k in 0..tensors {
                                let buf = w.tensor_mut(k);
                                let half = buf.len() / 2;
                                fill(buf, a.seed, seq, i, k);
                                if a.hold_ms > 0 && k == 0 {
                                    // Scribble over the second half, sleep, then restore it: a kill
                                    // here leaves a torn sample in a WRITING slot.
                                    buf[half..].fill(0xEE);
                                    std::thread::sleep(Duration::from_millis(a.hold_ms));
                                    fill(buf, a.seed, seq, i, k);
                                }
                            }
                            w.commit()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("writer thread panicked")?;
            }
            Ok(())
        })?;
    }
    producer.finish()?;
    println!("produced {} batches", a.batches);
    Ok(())
}

fn consume(a: &Args) -> Result<(), ShmError> {
    let mut consumer = Consumer::open(&a.name, &schema(a), &opts(a))?;
    println!(
        "attached pid {} producer {}",
        std::process::id(),
        consumer.producer_pid()
    );
    let layout = consumer.layout().clone();
    let mut expected_seq = 0u64;
    let mut scratch = Vec::new();
    let start = Instant::now();
    while let Some(batch) = consumer.next_batch()? {
        assert_eq!(batch.seq(), expected_seq, "batches out of order");
        assert_eq!(batch.meta().epoch, expected_seq / 10);
        for (k, p) in layout.tensors.iter().enumerate() {
            let data = batch.tensor(k);
            for i in 0..a.batch_size {
                scratch.resize(p.sample_bytes, 0);
                fill(&mut scratch, a.seed, expected_seq, i, k);
                let got = &data[i * p.sample_bytes..(i + 1) * p.sample_bytes];
                if got != &scratch[..] {
                    eprintln!("error: batch {expected_seq} sample {i} tensor {k}: bytes differ");
                    std::process::exit(2);
                }
            }
        }
        if a.consume_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(a.consume_delay_ms));
        }
        drop(batch);
        expected_seq += 1;
        println!("batch {}", expected_seq - 1);
    }
    println!(
        "verified {expected_seq} batches in order in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let a = Args::parse();
    let r = match a.role {
        Role::Produce => produce(&a),
        Role::Consume => consume(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_peer_gone() {
                ExitCode::from(proto_shm::exit::PEER_GONE)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
