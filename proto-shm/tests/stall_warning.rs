//! A live peer that makes no progress is reported after `stall_warning`, even though it keeps
//! its heartbeat (a producer blocked on its own workers still beats): the consumer logs that
//! the producer (pid …) has published nothing for that long, and carries on waiting until the
//! producer fails the stream.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto_shm::{Consumer, Producer, ShmOptions};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_live_producer_that_publishes_nothing_is_reported() {
    let schema = proto_shm::schemas::segmentation("stall", 2, 4, 4);
    let opts = ShmOptions {
        stall_warning: Duration::from_millis(300),
        ..ShmOptions::default()
    };
    let name = format!("stall-test-{}", std::process::id());
    let producer = Producer::create(&name, &schema, 2, &opts).unwrap();
    let log = Buf::default();
    let writer = log.clone();
    let consumer = std::thread::spawn({
        let (name, schema, opts) = (name.clone(), schema.clone(), opts.clone());
        move || {
            let sub = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(sub, || {
                let mut c = Consumer::open(&name, &schema, &opts).unwrap();
                c.next_batch().map(|b| b.is_some())
            })
        }
    });
    // Nothing is claimed or published for a second: the consumer must say so meanwhile.
    std::thread::sleep(Duration::from_millis(1000));
    let said = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    producer.fail("test over");
    let r = consumer.join().unwrap();
    assert!(
        said.contains(&format!(
            "producer (pid {}) is alive but has not published a batch",
            std::process::id()
        )),
        "no stall warning after 1 s with a 0.3 s threshold: {said:?}"
    );
    assert!(r.is_err(), "the consumer ends with the producer's failure");
}
