//! Checkpoints: one file holding named binary blobs (model, momentum encoder, optimiser state,
//! queues) and a JSON header (step, data cursor, config, blob offsets and checksums).
//!
//! Written atomically: to `<name>.tmp`, fsync'd, renamed over `<name>`, directory fsync'd — a
//! process killed mid-write leaves the previous checkpoint intact and loadable. Loading verifies the
//! magic, the header and every blob's checksum, and says which one is wrong.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"DSPCKPT1";

/// Where the run is: everything besides the blobs that an exact resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps taken.
    pub step: usize,
    /// The next batch the loader must serve: (epoch, batch index in the epoch).
    pub next_epoch: u64,
    pub next_batch: u64,
    /// Queue pointers (name → (ptr, filled)).
    pub queues: BTreeMap<String, (usize, usize)>,
    pub method: String,
    /// The run config (RON) the checkpoint was made with.
    pub config: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    state: TrainState,
    /// name → (offset after the header, length, FNV-1a 64 checksum)
    blobs: BTreeMap<String, (u64, u64, u64)>,
}

fn checksum(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in b.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ b.len() as u64
}

/// Writes `path` atomically.
pub fn save(path: &Path, state: &TrainState, blobs: &[(&str, Vec<u8>)]) -> Result<()> {
    let mut offset = 0u64;
    let mut index = BTreeMap::new();
    for (name, b) in blobs {
        index.insert(name.to_string(), (offset, b.len() as u64, checksum(b)));
        offset += b.len() as u64;
    }
    let header = serde_json::to_vec(&Header {
        state: state.clone(),
        blobs: index,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tmp_path(path);
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        f.write_all(MAGIC)?;
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        for (_, b) in blobs {
            f.write_all(b)?;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub state: TrainState,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Checkpoint {
    pub fn blob(&self, name: &str) -> Result<&[u8]> {
        self.blobs
            .get(name)
            .map(|v| v.as_slice())
            .with_context(|| format!("checkpoint has no {name:?} blob"))
    }
}

/// Reads and verifies a checkpoint.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("checkpoint {}: {what}", path.display());
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("not a checkpoint of this trainer (bad magic)"));
    }
    let hlen = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let body = 16 + hlen;
    if bytes.len() < body {
        return Err(bad("truncated header"));
    }
    let header: Header =
        serde_json::from_slice(&bytes[16..body]).map_err(|e| bad(&format!("header: {e}")))?;
    let mut blobs = BTreeMap::new();
    for (name, (off, len, sum)) in header.blobs {
        let (a, b) = (body + off as usize, body + (off + len) as usize);
        if b > bytes.len() {
            bail!("checkpoint {}: blob {name:?} is truncated", path.display());
        }
        let data = &bytes[a..b];
        if checksum(data) != sum {
            bail!(
                "checkpoint {}: blob {name:?} fails its checksum",
                path.display()
            );
        }
        blobs.insert(name, data.to_vec());
    }
    Ok(Checkpoint {
        state: header.state,
        blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TrainState {
        TrainState {
            step: 7,
            next_epoch: 1,
            next_batch: 2,
            queues: BTreeMap::from([("queue".to_string(), (3, 9))]),
            method: "mocov2".into(),
            config: "RunConfig()".into(),
        }
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        save(
            &p,
            &state(),
            &[("model", vec![1, 2, 3]), ("optim", vec![9; 100])],
        )
        .unwrap();
        let c = load(&p).unwrap();
        assert_eq!(c.state, state());
        assert_eq!(c.blob("optim").unwrap(), &[9u8; 100][..]);
        assert!(!tmp_path(&p).exists());
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0xFF;
        std::fs::write(&p, &bytes).unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("\"optim\" fails its checksum"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(load(&p).err().unwrap().to_string().contains("bad magic"));
    }
}
