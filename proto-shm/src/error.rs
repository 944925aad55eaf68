//! Errors of the shared-memory ring. Each variant is a distinct situation a caller may want to react
//! to (a dead peer is not the same as a peer that closed cleanly), and each message names the segment.

use std::fmt;
use std::path::PathBuf;

/// Which side of the ring a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Producer,
    Consumer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("invalid segment name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },

    #[error("segment {path} is in use by a live {role} (pid {pid}); refusing to touch it")]
    InUse { path: PathBuf, role: Role, pid: u32 },

    #[error("{path} exists but is not a proto-shm segment ({why}); refusing to touch it")]
    Foreign { path: PathBuf, why: String },

    #[error("segment {path} was left by a crashed run (producer pid {pid} is gone)")]
    Stale { path: PathBuf, pid: u32 },

    #[error(
        "not enough shared memory for segment {path}: need {needed} bytes, {available} bytes free in {dir}; \
         enlarge it (e.g. `mount -o remount,size=8G /dev/shm`, or docker --shm-size) or use fewer/smaller slots"
    )]
    NoSpace {
        path: PathBuf,
        dir: PathBuf,
        needed: u64,
        available: u64,
    },

    #[error("segment {path}: layout version {found}, this build reads version {expected}")]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    #[error("segment {path}: batch schema differs from what this side expects\n--- expected ---\n{expected}--- found in segment ---\n{found}")]
    SchemaMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("segment {path}: {role} (pid {pid}) died without closing the ring")]
    PeerDied { path: PathBuf, role: Role, pid: u32 },

    #[error("segment {path}: {role} (pid {pid}) closed the ring")]
    PeerClosed { path: PathBuf, role: Role, pid: u32 },

    #[error("segment {path}: producer (pid {pid}) failed: {reason}")]
    ProducerFailed {
        path: PathBuf,
        pid: u32,
        reason: String,
    },

    #[error("segment {path}: timed out after {waited_s:.1} s waiting for {what}")]
    Timeout {
        path: PathBuf,
        what: &'static str,
        waited_s: f64,
    },

    #[error("segment {path}: wait cancelled")]
    Cancelled { path: PathBuf },

    #[error("segment {path}: {what}")]
    Usage { path: PathBuf, what: String },

    #[error("segment {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl ShmError {
    pub(crate) fn io(
        path: &std::path::Path,
        op: &'static str,
        source: impl Into<std::io::Error>,
    ) -> Self {
        ShmError::Io {
            path: path.to_path_buf(),
            op,
            source: source.into(),
        }
    }

    /// True when the error means the other process is gone (died or closed), as opposed to a
    /// configuration or system problem on this side.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self,
            ShmError::PeerDied { .. }
                | ShmError::PeerClosed { .. }
                | ShmError::ProducerFailed { .. }
        )
    }
}
