//! The proposal store written by `tools/precompute-proposals` and read by the loader.
//!
//! One file: a header, then blocks of up to [`BLOCK_IMAGES`] consecutive images (by dataset
//! index), each block varint-encoded, zstd-compressed and checksummed, appended and fsync'd one at
//! a time; when the run completes, an index (key → block) and a footer. The file is valid at every
//! moment: a reader that finds no footer rebuilds the index by scanning the blocks and ignores a
//! torn last block, and a writer reopened on it drops that torn tail and continues — so a killed
//! precompute resumes where it stopped and ends with the same bytes as an uninterrupted run.
//!
//! Boxes are SoCo's `[x, y, w, h]` (w = max_x − min_x) in pixels of the full-resolution image,
//! stored (and returned) sorted; their order carries no meaning.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const BLOCK_IMAGES: usize = 256;
const MAGIC: &[u8; 8] = b"DSPPROP2";
/// The first format (interleaved varints), recognised only to ask for a rebuild.
const MAGIC_V1: &[u8; 8] = b"DSPPROP1";
const BLOCK_MAGIC: &[u8; 4] = b"BLK2";
const FOOTER_MAGIC: &[u8; 8] = b"DSPEND01";

/// One image's proposals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProposals {
    /// Dataset-relative path (the store's key).
    pub key: String,
    pub width: u32,
    pub height: u32,
    /// Which filter rule produced the boxes (0 full, 1 ratio only, 2 min size, 3 whole image;
    /// 255: the image could not be read).
    pub rule: u8,
    /// `[x, y, w, h]`.
    pub boxes: Vec<[u32; 4]>,
}

fn checksum(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h = (h ^ x as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*pos).context("truncated varint")?;
        *pos += 1;
        v |= ((x & 0x7F) as u64) << shift;
        if x < 0x80 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// A block's images, laid out for zstd: keys front-coded against the previous key; then each
/// image's width, height, rule and box count; then the boxes column by column (x as the gap to the
/// previous box's x, boxes being sorted; y; w; h), each column as four byte planes of its u32
/// values. Sorting and the x gaps shrink the values, and byte planes put the mostly-zero high
/// bytes together: 25 % smaller than interleaved varints on real proposals (BENCHMARKS.md).
fn encode_block(items: &[ImageProposals]) -> Vec<u8> {
    let mut raw = Vec::new();
    put_varint(&mut raw, items.len() as u64);
    let mut prev: &[u8] = &[];
    for it in items {
        let key = it.key.as_bytes();
        let common = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
        put_varint(&mut raw, common as u64);
        put_varint(&mut raw, (key.len() - common) as u64);
        raw.extend_from_slice(&key[common..]);
        prev = key;
    }
    let mut columns: [Vec<u32>; 4] = Default::default();
    for it in items {
        put_varint(&mut raw, it.width as u64);
        put_varint(&mut raw, it.height as u64);
        raw.push(it.rule);
        put_varint(&mut raw, it.boxes.len() as u64);
        let mut boxes = it.boxes.clone();
        boxes.sort_unstable();
        let mut prev_x = 0;
        for b in &boxes {
            columns[0].push(b[0] - prev_x);
            prev_x = b[0];
            for c in 1..4 {
                columns[c].push(b[c]);
            }
        }
    }
    for col in &columns {
        for byte in 0..4 {
            raw.extend(col.iter().map(|v| (v >> (8 * byte)) as u8));
        }
    }
    raw
}

fn decode_block(raw: &[u8]) -> Result<Vec<ImageProposals>> {
    decode_block_where(raw, |_| true)
}

/// The images of a block whose key passes `keep`. Keys and sizes are parsed for every image (the
/// keys are front-coded), boxes only for the kept ones: a lookup by key decodes one image's boxes,
/// not the block's.
fn decode_block_where(raw: &[u8], keep: impl Fn(&[u8]) -> bool) -> Result<Vec<ImageProposals>> {
    let mut pos = 0;
    let n = get_varint(raw, &mut pos)? as usize;
    let mut key: Vec<u8> = Vec::new();
    let mut kept: Vec<Option<String>> = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let common = get_varint(raw, &mut pos)? as usize;
        let rest = get_varint(raw, &mut pos)? as usize;
        if common > key.len() {
            bail!("bad key prefix");
        }
        key.truncate(common);
        key.extend_from_slice(raw.get(pos..pos + rest).context("truncated key")?);
        pos += rest;
        kept.push(if keep(&key) {
            Some(String::from_utf8(key.clone())?)
        } else {
            None
        });
    }
    // (image, index of its first box in the block's columns)
    let mut out: Vec<(ImageProposals, usize)> = Vec::new();
    let mut total = 0usize;
    for key in kept {
        let width = get_varint(raw, &mut pos)? as u32;
        let height = get_varint(raw, &mut pos)? as u32;
        let rule = *raw.get(pos).context("truncated rule")?;
        pos += 1;
        let nb = get_varint(raw, &mut pos)? as usize;
        if let Some(key) = key {
            let it = ImageProposals {
                key,
                width,
                height,
                rule,
                boxes: vec![[0u32; 4]; nb],
            };
            out.push((it, total));
        }
        total += nb;
    }
    let planes = raw.get(pos..).context("truncated boxes")?;
    if planes.len() != 16 * total {
        bail!(
            "block holds {} bytes of boxes for {total} boxes",
            planes.len()
        );
    }
    let value = |col: usize, i: usize| -> u32 {
        (0..4)
            .map(|byte| (planes[(col * 4 + byte) * total + i] as u32) << (8 * byte))
            .sum()
    };
    Ok(out
        .into_iter()
        .map(|(mut it, first)| {
            let mut x = 0u32;
            for (i, b) in it.boxes.iter_mut().enumerate() {
                x += value(0, first + i);
                *b = [
                    x,
                    value(1, first + i),
                    value(2, first + i),
                    value(3, first + i),
                ];
            }
            it
        })
        .collect())
}

/// A block found by [`scan_blocks`]: its file offset and its images.
struct ScannedBlock {
    offset: u64,
    items: Vec<ImageProposals>,
}

/// Valid blocks of a store file, in order, and the offset where they end.
fn scan_blocks(f: &mut File) -> Result<(Vec<ScannedBlock>, u64)> {
    let len = f.metadata()?.len();
    let mut head = [0u8; 16];
    f.seek(SeekFrom::Start(0))?;
    if len >= 16 && f.read_exact(&mut head).is_ok() && &head[..8] == MAGIC_V1 {
        bail!("a proposal store in the first format (before box columns): run precompute-proposals again to rebuild it");
    }
    if len < 16 || &head[..8] != MAGIC {
        bail!("not a proposal store (bad magic)");
    }
    let mut blocks = Vec::new();
    let mut pos = 16u64;
    loop {
        let mut bh = [0u8; 24];
        f.seek(SeekFrom::Start(pos))?;
        if pos + 24 > len || f.read_exact(&mut bh).is_err() || &bh[..4] != BLOCK_MAGIC {
            break;
        }
        let clen = u32::from_le_bytes(bh[4..8].try_into().unwrap()) as u64;
        let sum = u64::from_le_bytes(bh[16..24].try_into().unwrap());
        if pos + 24 + clen > len {
            break; // torn tail
        }
        let mut comp = vec![0u8; clen as usize];
        f.read_exact(&mut comp)?;
        if checksum(&comp) != sum {
            break;
        }
        let raw = zstd::decode_all(&comp[..])?;
        blocks.push(ScannedBlock {
            offset: pos,
            items: decode_block(&raw)?,
        });
        pos += 24 + clen;
    }
    Ok((blocks, pos))
}

/// Appends blocks to a store, resuming a partial one.
pub struct StoreWriter {
    file: File,
    path: PathBuf,
    blocks_done: usize,
}

impl StoreWriter {
    /// Opens `path` for appending (creating it if absent). Returns the writer and the number of
    /// complete blocks already in it; a torn tail or an old index is cut off.
    pub fn open(path: &Path) -> Result<StoreWriter> {
        let exists = path.exists();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening proposal store {}", path.display()))?;
        let blocks_done = if exists && file.metadata()?.len() > 0 {
            let (blocks, end) =
                scan_blocks(&mut file).with_context(|| format!("{}", path.display()))?;
            file.set_len(end)?;
            blocks.len()
        } else {
            file.write_all(MAGIC)?;
            file.write_all(&[0u8; 8])?;
            0
        };
        file.seek(SeekFrom::End(0))?;
        Ok(StoreWriter {
            file,
            path: path.to_path_buf(),
            blocks_done,
        })
    }

    pub fn blocks_done(&self) -> usize {
        self.blocks_done
    }

    /// Appends one block and makes it durable.
    pub fn append_block(&mut self, items: &[ImageProposals]) -> Result<()> {
        let raw = encode_block(items);
        let comp = zstd::encode_all(&raw[..], 19)?;
        let mut head = Vec::with_capacity(24);
        head.extend_from_slice(BLOCK_MAGIC);
        head.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        head.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        head.extend_from_slice(&(items.len() as u32).to_le_bytes());
        head.extend_from_slice(&checksum(&comp).to_le_bytes());
        self.file.write_all(&head)?;
        self.file.write_all(&comp)?;
        self.file
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        self.blocks_done += 1;
        Ok(())
    }

    /// Writes the index and footer: afterwards readers open without scanning.
    pub fn finish(mut self) -> Result<()> {
        let (blocks, end) = scan_blocks(&mut self.file)?;
        let mut idx = Vec::new();
        for (b, block) in blocks.iter().enumerate() {
            for it in &block.items {
                put_varint(&mut idx, it.key.len() as u64);
                idx.extend_from_slice(it.key.as_bytes());
                put_varint(&mut idx, block.offset);
                put_varint(&mut idx, b as u64);
            }
        }
        let comp = zstd::encode_all(&idx[..], 3)?;
        self.file.seek(SeekFrom::Start(end))?;
        self.file.write_all(&comp)?;
        self.file.write_all(&end.to_le_bytes())?;
        self.file.write_all(&(comp.len() as u64).to_le_bytes())?;
        self.file.write_all(&checksum(&comp).to_le_bytes())?;
        self.file.write_all(FOOTER_MAGIC)?;
        self.file.sync_all()?;
        Ok(())
    }
}

/// Read access by key, for the loader.
pub struct ProposalStore {
    map: memmap2::Mmap,
    /// key → block offset
    index: HashMap<String, u64>,
    pub complete: bool,
}

impl ProposalStore {
    pub fn open(path: &Path) -> Result<ProposalStore> {
        let mut f = File::open(path)
            .with_context(|| format!("opening proposal store {}", path.display()))?;
        // SAFETY: the store is only appended to by precompute-proposals; readers use whole blocks.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        let n = map.len();
        // The header decides the format before anything else is read (a finished store of the
        // first format has a footer too, and its blocks would fail deep inside a lookup).
        if map.get(..8) == Some(&MAGIC_V1[..]) {
            bail!(
                "proposal store {}: first format (before box columns): run precompute-proposals again to rebuild it",
                path.display()
            );
        }
        if map.get(..8) != Some(&MAGIC[..]) {
            bail!("{} is not a proposal store (bad magic)", path.display());
        }
        let mut index = HashMap::new();
        if n >= 40 && &map[n - 8..] == FOOTER_MAGIC {
            let g = |a: usize| u64::from_le_bytes(map[a..a + 8].try_into().unwrap());
            let (start, clen, sum) = (g(n - 32) as usize, g(n - 24) as usize, g(n - 16));
            let comp = map
                .get(start..start + clen)
                .context("index out of bounds")?;
            if checksum(comp) != sum {
                bail!(
                    "proposal store {}: index fails its checksum",
                    path.display()
                );
            }
            let raw = zstd::decode_all(comp)?;
            let mut pos = 0;
            while pos < raw.len() {
                let kl = get_varint(&raw, &mut pos)? as usize;
                let key = std::str::from_utf8(&raw[pos..pos + kl])?.to_string();
                pos += kl;
                let off = get_varint(&raw, &mut pos)?;
                let _block = get_varint(&raw, &mut pos)?;
                index.insert(key, off);
            }
            return Ok(ProposalStore {
                map,
                index,
                complete: true,
            });
        }
        let (blocks, _) = scan_blocks(&mut f).with_context(|| format!("{}", path.display()))?;
        for block in blocks {
            for it in block.items {
                index.insert(it.key, block.offset);
            }
        }
        Ok(ProposalStore {
            map,
            index,
            complete: false,
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// The proposals of `key`, verifying the block's checksum.
    pub fn get(&self, key: &str) -> Result<Option<ImageProposals>> {
        let Some(&off) = self.index.get(key) else {
            return Ok(None);
        };
        let off = off as usize;
        let h = &self.map[off..off + 24];
        let clen = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        let raw_len = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
        let sum = u64::from_le_bytes(h[16..24].try_into().unwrap());
        let comp = &self.map[off + 24..off + 24 + clen];
        if checksum(comp) != sum {
            bail!("proposal store block at {off} fails its checksum");
        }
        // Every sample reads a whole block: one decompression context and buffer per thread
        // instead of a fresh context and allocation each time.
        thread_local! {
            static BLOCK: RefCell<Option<(zstd::bulk::Decompressor<'static>, Vec<u8>)>> =
                const { RefCell::new(None) };
        }
        BLOCK.with_borrow_mut(|state| {
            let (dctx, buf) = match state {
                Some(s) => s,
                None => state.insert((zstd::bulk::Decompressor::new()?, Vec::new())),
            };
            buf.clear();
            buf.reserve(raw_len);
            let n = dctx
                .decompress_to_buffer(comp, buf)
                .with_context(|| format!("proposal store block at {off}"))?;
            if n != raw_len {
                bail!("proposal store block at {off}: {n} bytes, the header says {raw_len}");
            }
            let items = decode_block_where(buf, |k| k == key.as_bytes())?;
            Ok(items.into_iter().next())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: usize) -> ImageProposals {
        ImageProposals {
            key: format!("train/n{i:03}/img_{i}.JPEG"),
            width: 500,
            height: 375,
            rule: (i % 4) as u8,
            boxes: (0..i % 7)
                .map(|k| [k as u32 * 10, 3, 120 + i as u32, 80])
                .collect(),
        }
    }

    #[test]
    fn write_resume_finish_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.pstore");
        let mut w = StoreWriter::open(&p).unwrap();
        w.append_block(&(0..3).map(item).collect::<Vec<_>>())
            .unwrap();
        drop(w);
        // A torn tail (a crash mid-append) is ignored by readers and cut by the next writer.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"BLK2\x10\x00\x00\x00garbage").unwrap();
        drop(f);
        let r = ProposalStore::open(&p).unwrap();
        assert!(!r.complete);
        assert_eq!(r.len(), 3);
        let mut w = StoreWriter::open(&p).unwrap();
        assert_eq!(w.blocks_done(), 1);
        w.append_block(&(3..6).map(item).collect::<Vec<_>>())
            .unwrap();
        w.finish().unwrap();
        let r = ProposalStore::open(&p).unwrap();
        assert!(r.complete);
        assert_eq!(r.len(), 6);
        for i in 0..6 {
            assert_eq!(r.get(&item(i).key).unwrap(), Some(item(i)));
        }
        assert_eq!(r.get("missing").unwrap(), None);
    }

    #[test]
    fn boxes_round_trip_sorted_and_wide_values_survive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.pstore");
        let boxes = vec![
            [300, 7, 20, 9],
            [5, 900_000, 70_000, 3],
            [300, 2, 1, 1],
            [0, 0, 0, 0],
        ];
        let it = ImageProposals {
            key: "a/very/long/path.JPEG".into(),
            width: 100_000,
            height: 1_000_000,
            rule: 2,
            boxes: boxes.clone(),
        };
        let mut w = StoreWriter::open(&p).unwrap();
        w.append_block(std::slice::from_ref(&it)).unwrap();
        w.finish().unwrap();
        let got = ProposalStore::open(&p)
            .unwrap()
            .get(&it.key)
            .unwrap()
            .unwrap();
        let mut sorted = boxes;
        sorted.sort();
        assert_eq!(
            got,
            ImageProposals {
                boxes: sorted,
                ..it
            }
        );
        // A store of the first format is refused with the remedy, finished (footer) or not.
        let mut finished = std::fs::read(&p).unwrap();
        finished[..8].copy_from_slice(MAGIC_V1);
        for bytes in [&finished[..], b"DSPPROP1\0\0\0\0\0\0\0\0"] {
            std::fs::write(&p, bytes).unwrap();
            let err = format!("{:#}", ProposalStore::open(&p).err().unwrap());
            assert!(err.contains("run precompute-proposals again"), "{err}");
        }
    }
}
