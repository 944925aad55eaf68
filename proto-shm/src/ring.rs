//! The slot state machine over a [`Segment`]: one producer process (any number of writer threads)
//! and one consumer process.
//!
//! Batch `seq` always lives in slot `seq % slots`. A slot moves
//! `FREE → WRITING` (producer claims it, in sequence order) `→ READY` (the last sample is committed;
//! release store) `→ READING` (consumer takes it, acquire load, only if its sequence number is the
//! next one expected) `→ FREE` (consumer releases it). Because the consumer demands the exact next
//! sequence number, batches are delivered in order even when writers finish them out of order, and
//! because READY is stored with release ordering after every sample's bytes, a reader never sees a
//! torn batch.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Role, ShmError};
use crate::schema::{Layout, Schema};
use crate::segment::*;
use crate::wait;
use crate::Result;

/// Where a batch sits in the data stream; the trainer stores it in checkpoints to resume exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchMeta {
    pub epoch: u64,
    pub index_in_epoch: u64,
}

struct ProducerShared {
    seg: Segment,
    next_seq: Mutex<u64>,
    published: AtomicUsize,
    created: Instant,
}

impl Drop for ProducerShared {
    fn drop(&mut self) {
        let h = self.seg.header();
        if h.producer_state.load(Ordering::Acquire) == PRODUCER_RUNNING {
            if self.seg.read_failure().is_empty() {
                let why = if std::thread::panicking() {
                    "producer panicked"
                } else {
                    "producer stopped before the end of the stream"
                };
                self.seg.write_failure(why);
            }
            h.producer_state.store(PRODUCER_FAILED, Ordering::Release);
        }
        h.published.fetch_add(1, Ordering::Release);
        wait::wake_all(&h.published);
        self.seg.unlink_if_ours();
        // The liveness lock goes with the file descriptor when `seg` drops.
    }
}

/// The writing side. Cheap to clone; every clone and every [`SlotWriter`] keeps the segment alive.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<ProducerShared>,
}

impl Producer {
    /// Creates segment `name` with `slot_count` slots shaped by `schema`.
    pub fn create(
        name: &str,
        schema: &Schema,
        slot_count: usize,
        opts: &ShmOptions,
    ) -> Result<Producer> {
        let seg = Segment::create(name, schema, slot_count, opts)?;
        Ok(Producer {
            shared: Arc::new(ProducerShared {
                seg,
                next_seq: Mutex::new(0),
                published: AtomicUsize::new(0),
                created: Instant::now(),
            }),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.shared.seg.layout
    }

    pub fn path(&self) -> &std::path::Path {
        self.shared.seg.path()
    }

    pub fn slot_count(&self) -> usize {
        self.shared.seg.slot_count
    }

    /// Errors if the consumer is gone; `Ok(())` while it is attached or not yet attached.
    fn check_consumer(&self) -> Result<()> {
        let seg = &self.shared.seg;
        let h = seg.header();
        let state = h.consumer_state.load(Ordering::Acquire);
        let pid = h.consumer_pid.load(Ordering::Relaxed);
        match state {
            CONSUMER_CLOSED => Err(ShmError::PeerClosed {
                path: seg.path.clone(),
                role: Role::Consumer,
                pid,
            }),
            CONSUMER_ATTACHED => {
                if seg
                    .peer_lock_held()
                    .map_err(|e| ShmError::io(&seg.path, "lock probe", e))?
                {
                    Ok(())
                } else if h.consumer_state.load(Ordering::Acquire) == CONSUMER_CLOSED {
                    // Closed cleanly between our two loads.
                    self.check_consumer()
                } else {
                    Err(ShmError::PeerDied {
                        path: seg.path.clone(),
                        role: Role::Consumer,
                        pid,
                    })
                }
            }
            _ => {
                if self.shared.created.elapsed() > seg.opts.attach_timeout {
                    Err(ShmError::Timeout {
                        path: seg.path.clone(),
                        what: "a consumer to attach",
                        waited_s: self.shared.created.elapsed().as_secs_f64(),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Blocks until `cond` holds, waking on every release and every poll interval to check that the
    /// consumer is still there.
    fn wait_released(&self, mut cond: impl FnMut() -> bool) -> Result<()> {
        let seg = &self.shared.seg;
        let h = seg.header();
        let mut warned = false;
        // Progress is measured by this wait's length, not by the peer's heartbeat: a peer
        // blocked on us keeps beating while neither side moves.
        let waiting_since = std::time::Instant::now();
        loop {
            let seen = h.released.load(Ordering::Acquire);
            if cond() {
                return Ok(());
            }
            seg.check_cancel()?;
            self.check_consumer()?;
            seg.heartbeat();
            let waited = waiting_since.elapsed();
            if !warned
                && h.consumer_state.load(Ordering::Relaxed) == CONSUMER_ATTACHED
                && waited > seg.opts.stall_warning
            {
                warned = true;
                tracing::warn!(
                    segment = %seg.path.display(),
                    pid = h.consumer_pid.load(Ordering::Relaxed),
                    "consumer (pid {}) is alive but has not released a batch for {:.0} s",
                    h.consumer_pid.load(Ordering::Relaxed),
                    waited.as_secs_f64()
                );
            }
            wait::wait(&h.released, seen, seg.opts.poll_interval);
        }
    }

    /// Claims the slot of the next batch in sequence, blocking while the consumer still holds it.
    /// Several batches may be claimed before any is published.
    pub fn claim(&self, meta: BatchMeta) -> Result<SlotWriter> {
        let mut next = self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let seq = *next;
        let seg = &self.shared.seg;
        let slot = (seq % seg.slot_count as u64) as usize;
        let ctl = seg.ctl(slot);
        self.wait_released(|| ctl.state.load(Ordering::Acquire) == SLOT_FREE)?;
        ctl.seq.store(seq, Ordering::Relaxed);
        ctl.epoch.store(meta.epoch, Ordering::Relaxed);
        ctl.index_in_epoch
            .store(meta.index_in_epoch, Ordering::Relaxed);
        ctl.valid_samples.store(0, Ordering::Relaxed);
        ctl.state.store(SLOT_WRITING, Ordering::Relaxed);
        *next += 1;
        let batch = seg.layout.schema.batch_size;
        Ok(SlotWriter {
            shared: self.shared.clone(),
            slot,
            seq,
            state: Arc::new(SlotWriteState {
                claimed: (0..batch).map(|_| AtomicBool::new(false)).collect(),
                remaining: AtomicUsize::new(batch),
                poisoned: AtomicBool::new(false),
            }),
        })
    }

    /// Tells the consumer the stream's shape (for its schedules) before the first batch.
    pub fn set_stream_info(&self, batches_per_epoch: u64, total_batches: u64) {
        let h = self.shared.seg.header();
        h.batches_per_epoch
            .store(batches_per_epoch, Ordering::Relaxed);
        h.total_batches.store(total_batches, Ordering::Release);
    }

    /// Records why the stream stops; the consumer's next wait returns this reason.
    pub fn fail(&self, reason: &str) {
        let seg = &self.shared.seg;
        seg.write_failure(reason);
        let h = seg.header();
        if h.producer_state.load(Ordering::Acquire) == PRODUCER_RUNNING {
            h.producer_state.store(PRODUCER_FAILED, Ordering::Release);
        }
        h.published.fetch_add(1, Ordering::Release);
        wait::wake_all(&h.published);
    }

    /// Ends the stream after the batches published so far and waits until the consumer has released
    /// all of them (or goes away). Every claimed batch must have been published.
    pub fn finish(self) -> Result<()> {
        let seg = &self.shared.seg;
        let claimed = *self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let published = self.shared.published.load(Ordering::Acquire) as u64;
        if claimed != published {
            let what = format!(
                "finish() with {} claimed batches not yet published",
                claimed - published
            );
            self.fail(&what);
            return Err(ShmError::Usage {
                path: seg.path.clone(),
                what,
            });
        }
        let h = seg.header();
        h.final_count.store(claimed, Ordering::Relaxed);
        h.producer_state.store(PRODUCER_FINISHED, Ordering::Release);
        h.published.fetch_add(1, Ordering::Release);
        wait::wake_all(&h.published);
        let all_free =
            || (0..seg.slot_count).all(|i| seg.ctl(i).state.load(Ordering::Acquire) == SLOT_FREE);
        match self.wait_released(all_free) {
            Ok(()) => Ok(()),
            // The consumer read everything it wanted and closed: a normal end.
            Err(ShmError::PeerClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

struct SlotWriteState {
    claimed: Vec<AtomicBool>,
    remaining: AtomicUsize,
    poisoned: AtomicBool,
}

/// A claimed slot. Clone it into each worker thread; each sample index can be taken exactly once,
/// and the thread that commits the last sample publishes the batch.
#[derive(Clone)]
pub struct SlotWriter {
    shared: Arc<ProducerShared>,
    slot: usize,
    seq: u64,
    state: Arc<SlotWriteState>,
}

impl SlotWriter {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn layout(&self) -> &Layout {
        &self.shared.seg.layout
    }

    /// Takes sample `index` of this batch for writing. Errors if it was already taken.
    pub fn sample(&self, index: usize) -> Result<SampleWriter> {
        let seg = &self.shared.seg;
        let batch = seg.layout.schema.batch_size;
        if index >= batch {
            return Err(ShmError::Usage {
                path: seg.path.clone(),
                what: format!("sample index {index} out of range for batch size {batch}"),
            });
        }
        if self.state.claimed[index].swap(true, Ordering::AcqRel) {
            return Err(ShmError::Usage {
                path: seg.path.clone(),
                what: format!("sample {index} of batch {} taken twice", self.seq),
            });
        }
        Ok(SampleWriter {
            slot: self.clone(),
            index,
            committed: false,
        })
    }

    fn publish(&self) {
        let seg = &self.shared.seg;
        let ctl = seg.ctl(self.slot);
        ctl.valid_samples
            .store(seg.layout.schema.batch_size as u32, Ordering::Relaxed);
        ctl.state.store(SLOT_READY, Ordering::Release);
        self.shared.published.fetch_add(1, Ordering::AcqRel);
        let h = seg.header();
        h.published.fetch_add(1, Ordering::Release);
        seg.heartbeat();
        wait::wake_all(&h.published);
    }
}

/// Exclusive write access to one sample of a claimed slot.
pub struct SampleWriter {
    slot: SlotWriter,
    index: usize,
    committed: bool,
}

impl SampleWriter {
    pub fn index(&self) -> usize {
        self.index
    }

    /// This sample's bytes of tensor `tensor` (schema order), to be written in place.
    pub fn tensor_mut(&mut self, tensor: usize) -> &mut [u8] {
        let seg = &self.slot.shared.seg;
        let p = seg.layout.tensors[tensor];
        // SAFETY: the range lies inside this slot; sample indices are handed out once, so no two
        // SampleWriters alias, and the consumer does not read the slot until it is READY.
        unsafe {
            let base = seg
                .slot_ptr(self.slot.slot)
                .add(p.offset_in_slot + self.index * p.sample_bytes);
            std::slice::from_raw_parts_mut(base, p.sample_bytes)
        }
    }

    /// This sample's tensors by schema name (disjoint byte ranges of the slot).
    pub fn named(&mut self) -> crate::SampleTensors<'_> {
        let seg = &self.slot.shared.seg;
        let base = seg.slot_ptr(self.slot.slot);
        let bufs = seg
            .layout
            .tensors
            .iter()
            .map(|p| {
                // SAFETY: as in `tensor_mut`; the tensors of one sample never overlap each other.
                unsafe {
                    std::slice::from_raw_parts_mut(
                        base.add(p.offset_in_slot + self.index * p.sample_bytes),
                        p.sample_bytes,
                    )
                }
            })
            .collect();
        crate::SampleTensors::new(&seg.layout.schema, bufs)
    }

    /// Marks the sample complete. Returns true if this completed (and so published) the batch.
    pub fn commit(mut self) -> Result<bool> {
        self.committed = true;
        if self.slot.state.poisoned.load(Ordering::Acquire) {
            return Err(ShmError::Usage {
                path: self.slot.shared.seg.path.clone(),
                what: format!("batch {} was abandoned by another writer", self.slot.seq),
            });
        }
        // AcqRel: the last committer acquires every other writer's bytes before publishing them.
        if self.slot.state.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.slot.publish();
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

impl Drop for SampleWriter {
    fn drop(&mut self) {
        if !self.committed {
            // A half-written sample must never reach the trainer: the batch is never published.
            self.slot.state.poisoned.store(true, Ordering::Release);
        }
    }
}

/// The reading side: hands out batches strictly in sequence order.
pub struct Consumer {
    seg: Segment,
    next_seq: u64,
}

impl Consumer {
    /// Attaches to segment `name`, waiting for it to appear, and checks its schema against `expected`.
    pub fn open(name: &str, expected: &Schema, opts: &ShmOptions) -> Result<Consumer> {
        Ok(Consumer {
            seg: Segment::open(name, expected, opts)?,
            next_seq: 0,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.seg.layout
    }

    pub fn path(&self) -> &std::path::Path {
        self.seg.path()
    }

    pub fn producer_pid(&self) -> u32 {
        self.seg.header().producer_pid.load(Ordering::Relaxed)
    }

    /// (batches per epoch, total batches) as the producer announced them; 0 when unknown. Valid
    /// once the first batch has been received.
    pub fn stream_info(&self) -> (u64, u64) {
        let h = self.seg.header();
        let total = h.total_batches.load(Ordering::Acquire);
        (h.batches_per_epoch.load(Ordering::Relaxed), total)
    }

    /// The next batch, blocking until it is ready; `Ok(None)` at the end of the stream.
    pub fn next_batch(&mut self) -> Result<Option<Batch<'_>>> {
        let seg = &self.seg;
        let h = seg.header();
        let seq = self.next_seq;
        let slot = (seq % seg.slot_count as u64) as usize;
        let ctl = seg.ctl(slot);
        let ready = || {
            ctl.state.load(Ordering::Acquire) == SLOT_READY
                && ctl.seq.load(Ordering::Relaxed) == seq
        };
        let mut warned = false;
        let waiting_since = std::time::Instant::now();
        loop {
            let seen = h.published.load(Ordering::Acquire);
            if ready() {
                break;
            }
            let pid = h.producer_pid.load(Ordering::Relaxed);
            match h.producer_state.load(Ordering::Acquire) {
                PRODUCER_FINISHED if seq >= h.final_count.load(Ordering::Relaxed) => {
                    return Ok(None)
                }
                PRODUCER_FINISHED => {}
                PRODUCER_FAILED => {
                    return Err(ShmError::ProducerFailed {
                        path: seg.path.clone(),
                        pid,
                        reason: seg.read_failure(),
                    })
                }
                _ => {
                    let alive = seg
                        .peer_lock_held()
                        .map_err(|e| ShmError::io(&seg.path, "lock probe", e))?;
                    if !alive {
                        // It may have published or finished just before dying: look once more.
                        if ready() || h.producer_state.load(Ordering::Acquire) != PRODUCER_RUNNING {
                            continue;
                        }
                        return Err(ShmError::PeerDied {
                            path: seg.path.clone(),
                            role: Role::Producer,
                            pid,
                        });
                    }
                }
            }
            seg.check_cancel()?;
            seg.heartbeat();
            let waited = waiting_since.elapsed();
            if !warned && waited > seg.opts.stall_warning {
                warned = true;
                tracing::warn!(
                    segment = %seg.path.display(),
                    pid,
                    "producer (pid {pid}) is alive but has not published a batch for {:.0} s",
                    waited.as_secs_f64()
                );
            }
            wait::wait(&h.published, seen, seg.opts.poll_interval);
        }
        ctl.state.store(SLOT_READING, Ordering::Relaxed);
        self.next_seq += 1;
        seg.heartbeat();
        Ok(Some(Batch {
            seg,
            slot,
            seq,
            meta: BatchMeta {
                epoch: ctl.epoch.load(Ordering::Relaxed),
                index_in_epoch: ctl.index_in_epoch.load(Ordering::Relaxed),
            },
        }))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let h = self.seg.header();
        h.consumer_state.store(CONSUMER_CLOSED, Ordering::Release);
        h.released.fetch_add(1, Ordering::Release);
        wait::wake_all(&h.released);
        // The producer unlinks too when it exits; whoever goes last leaves nothing behind, and a
        // producer that died leaves its cleanup to us.
        self.seg.unlink_if_ours();
    }
}

/// A batch borrowed from the ring; the slot returns to the producer when this is dropped.
pub struct Batch<'a> {
    seg: &'a Segment,
    slot: usize,
    seq: u64,
    meta: BatchMeta,
}

impl Batch<'_> {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn meta(&self) -> BatchMeta {
        self.meta
    }

    /// All samples of tensor `tensor` (schema order), batch-major and contiguous.
    pub fn tensor(&self, tensor: usize) -> &[u8] {
        let p = self.seg.layout.tensors[tensor];
        // SAFETY: the slot is READING: the producer does not touch it until we release it.
        unsafe {
            std::slice::from_raw_parts(
                self.seg.slot_ptr(self.slot).add(p.offset_in_slot),
                p.total_bytes,
            )
        }
    }

    pub fn tensor_by_name(&self, name: &str) -> Option<&[u8]> {
        self.seg
            .layout
            .schema
            .tensor_index(name)
            .map(|i| self.tensor(i))
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let ctl = self.seg.ctl(self.slot);
        ctl.state.store(SLOT_FREE, Ordering::Release);
        let h = self.seg.header();
        h.released.fetch_add(1, Ordering::Release);
        wait::wake_all(&h.released);
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Producer>();
    is::<SlotWriter>();
    is::<Consumer>();
}
