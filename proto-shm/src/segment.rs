//! The named segment: a file in `/dev/shm` (or another tmpfs) that holds a header, one control block
//! per slot, and the slots themselves; plus liveness.
//!
//! Liveness uses open-file-description byte-range locks (`F_OFD_SETLK`) on the segment file itself:
//! the producer holds byte 0, the consumer byte 1. The kernel drops a lock when its holder dies, even
//! after `kill -9`, so "lock free but the peer never said goodbye" means the peer is dead — with no
//! heartbeat timeout that a busy machine could trip. Heartbeats are kept as a second, diagnostic
//! signal (a peer that holds its lock but has not touched the ring for a long time is reported, not
//! declared dead).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::MmapRaw;

use crate::error::{Role, ShmError};
use crate::schema::{align_up, Layout, Schema};
use crate::Result;

/// "PSHMRING" — first eight bytes of every segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PSHMRING");
/// Bumped whenever the header or slot layout changes.
pub const LAYOUT_VERSION: u32 = 1;

const PRODUCER_LOCK_BYTE: i64 = 0;
const CONSUMER_LOCK_BYTE: i64 = 1;

const FAILURE_OFFSET: usize = 512;
const FAILURE_MAX: usize = 512;
const SCHEMA_OFFSET: usize = 1024;

pub(crate) const PRODUCER_RUNNING: u32 = 0;
pub(crate) const PRODUCER_FINISHED: u32 = 1;
pub(crate) const PRODUCER_FAILED: u32 = 2;

pub(crate) const CONSUMER_ABSENT: u32 = 0;
pub(crate) const CONSUMER_ATTACHED: u32 = 1;
pub(crate) const CONSUMER_CLOSED: u32 = 2;

/// Fixed part of the header. Every field is atomic because two processes touch it concurrently.
#[repr(C)]
pub(crate) struct Header {
    /// Written last, with release ordering: a reader that sees it sees a complete header.
    pub magic: AtomicU64,
    pub layout_version: AtomicU32,
    pub slot_count: AtomicU32,
    pub total_bytes: AtomicU64,
    pub slot_stride: AtomicU64,
    pub ctl_offset: AtomicU64,
    pub data_offset: AtomicU64,
    pub schema_len: AtomicU32,
    pub failure_len: AtomicU32,
    pub producer_pid: AtomicU32,
    pub consumer_pid: AtomicU32,
    pub producer_state: AtomicU32,
    pub consumer_state: AtomicU32,
    /// Futex word bumped on every publish and on producer state changes.
    pub published: AtomicU32,
    /// Futex word bumped on every release and on consumer state changes.
    pub released: AtomicU32,
    /// Number of batches in the stream, valid once the producer is FINISHED.
    pub final_count: AtomicU64,
    pub producer_heartbeat_ms: AtomicU64,
    pub consumer_heartbeat_ms: AtomicU64,
    /// What the producer knows of the whole stream (0 = unknown): batches per epoch and in total.
    pub batches_per_epoch: AtomicU64,
    pub total_batches: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Header>() <= FAILURE_OFFSET);

/// Per-slot control block, one cache line each so the two sides never false-share.
#[repr(C, align(64))]
pub(crate) struct SlotCtl {
    pub state: AtomicU32,
    pub valid_samples: AtomicU32,
    pub seq: AtomicU64,
    pub epoch: AtomicU64,
    pub index_in_epoch: AtomicU64,
}

pub(crate) const SLOT_FREE: u32 = 0;
pub(crate) const SLOT_WRITING: u32 = 1;
pub(crate) const SLOT_READY: u32 = 2;
pub(crate) const SLOT_READING: u32 = 3;

/// Where segments live and how patiently each side waits.
#[derive(Debug, Clone)]
pub struct ShmOptions {
    /// Directory of the segment files; a tmpfs. Default `/dev/shm`, or `$PROTO_SHM_DIR` when set.
    pub dir: PathBuf,
    /// How often a blocked side wakes to check on its peer; bounds death-detection latency.
    pub poll_interval: Duration,
    /// How long the consumer waits for the segment to appear, and the producer for a consumer to attach.
    pub attach_timeout: Duration,
    /// A live peer that has not touched the ring for this long is reported (not declared dead).
    pub stall_warning: Duration,
    /// When set to true (e.g. by a signal handler), blocked waits return [`ShmError::Cancelled`].
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions {
            dir: std::env::var_os("PROTO_SHM_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev/shm")),
            poll_interval: Duration::from_millis(100),
            attach_timeout: Duration::from_secs(120),
            stall_warning: Duration::from_secs(60),
            cancel: None,
        }
    }
}

/// Names become file names in a shared directory: keep them to a safe alphabet.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(ShmError::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

pub(crate) fn now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}

/// A mapped segment, seen from one side.
pub struct Segment {
    pub(crate) path: PathBuf,
    pub(crate) role: Role,
    file: File,
    map: MmapRaw,
    dev_ino: (u64, u64),
    pub(crate) layout: Layout,
    pub(crate) slot_count: usize,
    pub(crate) opts: ShmOptions,
}

// The mapping is shared memory accessed only through atomics and disjoint byte ranges.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

fn ofd_lock(file: &File, byte: i64, try_set: bool) -> std::io::Result<bool> {
    // SAFETY: plain fcntl on an owned fd with a properly initialised flock struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    let cmd = if try_set {
        libc::F_OFD_SETLK
    } else {
        libc::F_OFD_GETLK
    };
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if rc == -1 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) if try_set => Ok(false),
            _ => Err(err),
        };
    }
    if try_set {
        Ok(true)
    } else {
        // GETLK: F_UNLCK means nobody else holds a conflicting lock.
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }
}

fn open_raw(path: &Path, create: bool) -> std::io::Result<File> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("validated name has no NUL");
    let mut flags = libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    if create {
        flags |= libc::O_CREAT | libc::O_EXCL;
    }
    // SAFETY: open(2) with a valid C string; the fd is owned by the File from here on.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn dev_ino(file: &File) -> std::io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Reads the fixed header fields of an existing file, if it is long enough to have one.
fn peek_header(file: &File) -> std::io::Result<Option<(u64, u32, u32)>> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len < std::mem::size_of::<Header>() as u64 {
        return Ok(None);
    }
    let mut buf = [0u8; 48];
    file.read_exact_at(&mut buf, 0)?;
    let magic = u64::from_le_bytes(buf[0..8].try_into().unwrap());
    let version = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    // producer_pid sits after 8+4+4+8*4+4+4 = 56 bytes; read it separately.
    let mut pid = [0u8; 4];
    file.read_exact_at(&mut pid, std::mem::offset_of!(Header, producer_pid) as u64)?;
    Ok(Some((magic, version, u32::from_le_bytes(pid))))
}

impl Segment {
    fn path_for(name: &str, opts: &ShmOptions) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(opts.dir.join(name))
    }

    /// Creates the segment as its producer, reclaiming a stale one of ours left by a crashed run and
    /// refusing anything live or foreign.
    pub fn create(
        name: &str,
        schema: &Schema,
        slot_count: usize,
        opts: &ShmOptions,
    ) -> Result<Segment> {
        let path = Self::path_for(name, opts)?;
        if let Err(why) = schema.check() {
            return Err(ShmError::Usage {
                path,
                what: format!("invalid schema: {why}"),
            });
        }
        if slot_count == 0 {
            return Err(ShmError::Usage {
                path,
                what: "a ring needs at least one slot".into(),
            });
        }
        for _attempt in 0..4 {
            match open_raw(&path, true) {
                Ok(file) => {
                    if !ofd_lock(&file, PRODUCER_LOCK_BYTE, true)
                        .map_err(|e| ShmError::io(&path, "lock", e))?
                    {
                        return Err(ShmError::InUse {
                            path,
                            role: Role::Producer,
                            pid: 0,
                        });
                    }
                    return Self::init(path, file, schema, slot_count, opts);
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    Self::reclaim_if_stale(&path)?;
                }
                Err(e) => return Err(ShmError::io(&path, "create", e)),
            }
        }
        Err(ShmError::Usage {
            path,
            what: "another process keeps re-creating this segment name".into(),
        })
    }

    /// An existing file at our path: refuse it if a live peer holds it or it is not ours; unlink it
    /// if it is a segment whose processes are all gone.
    fn reclaim_if_stale(path: &Path) -> Result<()> {
        let file = match open_raw(path, false) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(ShmError::io(path, "open existing", e)),
        };
        let header = peek_header(&file).map_err(|e| ShmError::io(path, "read header", e))?;
        let pid = header.map(|h| h.2).unwrap_or(0);
        // Probe, do not take, the producer lock: taking it would make the dead run look alive to a
        // consumer that attaches in this instant.
        if ofd_lock(&file, PRODUCER_LOCK_BYTE, false)
            .map_err(|e| ShmError::io(path, "lock probe", e))?
        {
            return Err(ShmError::InUse {
                path: path.to_path_buf(),
                role: Role::Producer,
                pid,
            });
        }
        if ofd_lock(&file, CONSUMER_LOCK_BYTE, false)
            .map_err(|e| ShmError::io(path, "lock probe", e))?
        {
            let mut cpid = [0u8; 4];
            use std::os::unix::fs::FileExt;
            let _ =
                file.read_exact_at(&mut cpid, std::mem::offset_of!(Header, consumer_pid) as u64);
            return Err(ShmError::InUse {
                path: path.to_path_buf(),
                role: Role::Consumer,
                pid: u32::from_le_bytes(cpid),
            });
        }
        match header {
            // A file cut short while being created by a run that then died: ours, reclaim it.
            None | Some((0, _, _)) => {}
            Some((MAGIC, _, _)) => {}
            Some((magic, _, _)) => {
                return Err(ShmError::Foreign {
                    path: path.to_path_buf(),
                    why: format!("magic {magic:#018x}"),
                })
            }
        }
        // Unlink only if the path still names the file we inspected.
        let ours = dev_ino(&file).map_err(|e| ShmError::io(path, "stat", e))?;
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if (m.dev(), m.ino()) == ours {
                tracing::warn!(segment = %path.display(), pid, "reclaiming stale segment left by a crashed run");
                match std::fs::remove_file(path) {
                    // A consumer of this run may clear the same leftovers at the same moment.
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ShmError::io(path, "unlink stale", e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn init(
        path: PathBuf,
        file: File,
        schema: &Schema,
        slot_count: usize,
        opts: &ShmOptions,
    ) -> Result<Segment> {
        let layout = Layout::new(schema);
        let schema_text = schema.to_text();
        let ctl_offset = align_up(SCHEMA_OFFSET + schema_text.len(), 64);
        let data_offset = align_up(
            ctl_offset + slot_count * std::mem::size_of::<SlotCtl>(),
            4096,
        );
        let total = data_offset as u64 + layout.slot_stride as u64 * slot_count as u64;

        let cleanup = |e: ShmError| {
            let _ = std::fs::remove_file(&path);
            e
        };
        // Reserve every byte now: a tmpfs that is too small fails here, with a message, instead of
        // SIGBUS-ing a worker in the middle of an epoch.
        let st =
            rustix::fs::fstatvfs(&file).map_err(|e| cleanup(ShmError::io(&path, "statvfs", e)))?;
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        let no_space = |available| {
            cleanup(ShmError::NoSpace {
                path: path.clone(),
                dir: opts.dir.clone(),
                needed: total,
                available,
            })
        };
        if available < total {
            return Err(no_space(available));
        }
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, total) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOSPC) => return Err(no_space(available)),
            Err(e) => return Err(cleanup(ShmError::io(&path, "reserve space (fallocate)", e))),
        }
        rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o600))
            .map_err(|e| cleanup(ShmError::io(&path, "chmod", e)))?;
        let map = MmapRaw::map_raw(&file).map_err(|e| cleanup(ShmError::io(&path, "mmap", e)))?;
        let dev_ino = dev_ino(&file).map_err(|e| cleanup(ShmError::io(&path, "stat", e)))?;
        let seg = Segment {
            path,
            role: Role::Producer,
            file,
            map,
            dev_ino,
            layout,
            slot_count,
            opts: opts.clone(),
        };
        let h = seg.header();
        h.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.slot_count.store(slot_count as u32, Ordering::Relaxed);
        h.total_bytes.store(total, Ordering::Relaxed);
        h.slot_stride
            .store(seg.layout.slot_stride as u64, Ordering::Relaxed);
        h.ctl_offset.store(ctl_offset as u64, Ordering::Relaxed);
        h.data_offset.store(data_offset as u64, Ordering::Relaxed);
        h.schema_len
            .store(schema_text.len() as u32, Ordering::Relaxed);
        h.producer_pid.store(std::process::id(), Ordering::Relaxed);
        h.producer_state.store(PRODUCER_RUNNING, Ordering::Relaxed);
        h.consumer_state.store(CONSUMER_ABSENT, Ordering::Relaxed);
        h.producer_heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        // SAFETY: the schema area lies inside the mapping (checked by construction of ctl_offset).
        unsafe {
            std::ptr::copy_nonoverlapping(
                schema_text.as_ptr(),
                seg.map.as_mut_ptr().add(SCHEMA_OFFSET),
                schema_text.len(),
            );
        }
        for i in 0..slot_count {
            seg.ctl(i).state.store(SLOT_FREE, Ordering::Relaxed);
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ok(seg)
    }

    /// Opens an existing segment as its consumer, after checking that it is ours, that its producer
    /// is alive (or finished cleanly) and that its schema is `expected` — before reading any data.
    /// Waits up to `opts.attach_timeout` for the producer to create it.
    pub fn open(name: &str, expected: &Schema, opts: &ShmOptions) -> Result<Segment> {
        let path = Self::path_for(name, opts)?;
        let start = std::time::Instant::now();
        let timed_out = |path: &Path| ShmError::Timeout {
            path: path.to_path_buf(),
            what: "the producer to create the segment",
            waited_s: start.elapsed().as_secs_f64(),
        };
        loop {
            let file = match open_raw(&path, false) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if start.elapsed() > opts.attach_timeout {
                        return Err(timed_out(&path));
                    }
                    std::thread::sleep(opts.poll_interval.min(Duration::from_millis(50)));
                    continue;
                }
                Err(e) => return Err(ShmError::io(&path, "open", e)),
            };
            match peek_header(&file).map_err(|e| ShmError::io(&path, "read header", e))? {
                Some((MAGIC, version, _)) => {
                    if version != LAYOUT_VERSION {
                        return Err(ShmError::Version {
                            path,
                            found: version,
                            expected: LAYOUT_VERSION,
                        });
                    }
                }
                // Still being initialised by the producer (magic is written last).
                None | Some((0, _, _)) => {
                    if start.elapsed() > opts.attach_timeout {
                        return Err(timed_out(&path));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Some((magic, _, _)) => {
                    return Err(ShmError::Foreign {
                        path,
                        why: format!("magic {magic:#018x}"),
                    })
                }
            }
            match Self::attach(path.clone(), file, expected, opts) {
                // A crashed run's leftovers: clear them and wait for the producer of this run.
                Err(ShmError::Stale { pid, .. }) => {
                    tracing::warn!(segment = %path.display(), pid, "removed a stale segment left by a crashed run; waiting for a live producer");
                    if start.elapsed() > opts.attach_timeout {
                        return Err(timed_out(&path));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn attach(path: PathBuf, file: File, expected: &Schema, opts: &ShmOptions) -> Result<Segment> {
        let map = MmapRaw::map_raw(&file).map_err(|e| ShmError::io(&path, "mmap", e))?;
        let dev_ino = dev_ino(&file).map_err(|e| ShmError::io(&path, "stat", e))?;
        let layout = Layout::new(expected);
        let mut seg = Segment {
            path,
            role: Role::Consumer,
            file,
            map,
            dev_ino,
            layout,
            slot_count: 0,
            opts: opts.clone(),
        };
        let h = seg.header();
        let _ = h.magic.load(Ordering::Acquire);
        let schema_len = h.schema_len.load(Ordering::Relaxed) as usize;
        let total = h.total_bytes.load(Ordering::Relaxed) as usize;
        if total != seg.map.len() || SCHEMA_OFFSET + schema_len > total {
            return Err(ShmError::Usage {
                path: seg.path.clone(),
                what: format!(
                    "corrupt header: total {total} bytes, mapped {}",
                    seg.map.len()
                ),
            });
        }
        // SAFETY: bounds checked above.
        let found =
            unsafe { std::slice::from_raw_parts(seg.map.as_ptr().add(SCHEMA_OFFSET), schema_len) };
        let found = String::from_utf8_lossy(found).into_owned();
        let expected_text = expected.to_text();
        if found != expected_text {
            // Do not unlink: the segment belongs to a live producer that serves someone else.
            return Err(ShmError::SchemaMismatch {
                path: seg.path.clone(),
                expected: expected_text,
                found,
            });
        }
        let slot_count = h.slot_count.load(Ordering::Relaxed) as usize;
        let stride = h.slot_stride.load(Ordering::Relaxed) as usize;
        let data_offset = h.data_offset.load(Ordering::Relaxed) as usize;
        if stride != seg.layout.slot_stride || data_offset + stride * slot_count != total {
            return Err(ShmError::Usage {
                path: seg.path.clone(),
                what: format!(
                    "corrupt header: slot stride {stride}, expected {}",
                    seg.layout.slot_stride
                ),
            });
        }
        seg.slot_count = slot_count;

        let h = seg.header();
        let producer_pid = h.producer_pid.load(Ordering::Relaxed);
        if !seg
            .peer_lock_held()
            .map_err(|e| ShmError::io(&seg.path, "lock probe", e))?
            && h.producer_state.load(Ordering::Acquire) == PRODUCER_RUNNING
        {
            seg.unlink_if_ours();
            return Err(ShmError::Stale {
                path: seg.path.clone(),
                pid: producer_pid,
            });
        }
        if !ofd_lock(&seg.file, CONSUMER_LOCK_BYTE, true)
            .map_err(|e| ShmError::io(&seg.path, "lock", e))?
        {
            return Err(ShmError::InUse {
                path: seg.path.clone(),
                role: Role::Consumer,
                pid: h.consumer_pid.load(Ordering::Relaxed),
            });
        }
        h.consumer_pid.store(std::process::id(), Ordering::Relaxed);
        h.consumer_heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        h.consumer_state.store(CONSUMER_ATTACHED, Ordering::Release);
        h.released.fetch_add(1, Ordering::Release);
        crate::wait::wake_all(&h.released);
        Ok(seg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping starts page aligned and is at least one header long.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    pub(crate) fn ctl(&self, slot: usize) -> &SlotCtl {
        assert!(slot < self.slot_count.max(1));
        let off = self.header().ctl_offset.load(Ordering::Relaxed) as usize;
        // SAFETY: ctl_offset is 64-aligned and the control array lies inside the mapping.
        unsafe {
            &*(self
                .map
                .as_ptr()
                .add(off + slot * std::mem::size_of::<SlotCtl>()) as *const SlotCtl)
        }
    }

    /// Start of a slot's data.
    pub(crate) fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slot_count);
        let off = self.header().data_offset.load(Ordering::Relaxed) as usize;
        // SAFETY: inside the mapping by construction (checked on attach).
        unsafe {
            self.map
                .as_mut_ptr()
                .add(off + slot * self.layout.slot_stride)
        }
    }

    /// Is the other side's liveness lock held right now?
    pub(crate) fn peer_lock_held(&self) -> std::io::Result<bool> {
        let byte = match self.role {
            Role::Producer => CONSUMER_LOCK_BYTE,
            Role::Consumer => PRODUCER_LOCK_BYTE,
        };
        ofd_lock(&self.file, byte, false)
    }

    /// Errors if the owner of this side asked blocked waits to give up.
    pub(crate) fn check_cancel(&self) -> Result<()> {
        match &self.opts.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(ShmError::Cancelled {
                path: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn heartbeat(&self) {
        let h = self.header();
        let word = match self.role {
            Role::Producer => &h.producer_heartbeat_ms,
            Role::Consumer => &h.consumer_heartbeat_ms,
        };
        word.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn write_failure(&self, reason: &str) {
        let bytes = reason.as_bytes();
        let mut n = bytes.len().min(FAILURE_MAX);
        while !reason.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the failure area is inside the first page of the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(FAILURE_OFFSET),
                n,
            );
        }
        self.header().failure_len.store(n as u32, Ordering::Release);
    }

    pub(crate) fn read_failure(&self) -> String {
        let n = (self.header().failure_len.load(Ordering::Acquire) as usize).min(FAILURE_MAX);
        // SAFETY: as in write_failure.
        let bytes = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(FAILURE_OFFSET), n) };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Removes the name if it still refers to this segment (a later run may have re-created it).
    pub(crate) fn unlink_if_ours(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.dev_ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
