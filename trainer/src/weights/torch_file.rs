//! `torch.save`'s file format (PyTorch ≥ 1.6): a zip of stored (uncompressed) entries under one
//! folder — `data.pkl` (the pickled object, tensors as `_rebuild_tensor_v2` over persistent
//! storage ids), `data/<id>` (each storage's raw little-endian bytes, aligned to 64 bytes as
//! torch writes them, so `torch.load(mmap=True)` works too), `byteorder` and `version`.
//! Reading goes through burn-store's pytorch-reader; this is the writing half.

use std::io::Write;

use anyhow::Result;
use zip::write::SimpleFileOptions;

use super::pickle_writer::Writer;
use super::{Entry, StateDict, Values};

/// What a `.pth` holds at its root.
pub enum Root<'a> {
    /// A bare state dict (torchvision's `resnet50-*.pth`).
    StateDict(&'a StateDict),
    /// `{"meta": {k: v}, "state_dict": …}` (mmengine / mmseg checkpoints).
    WithMeta {
        meta: &'a [(&'a str, String)],
        state_dict: &'a StateDict,
    },
}

/// The bytes of a `.pth` file holding `root`.
pub fn pth_bytes(root: Root<'_>) -> Result<Vec<u8>> {
    let mut w = Writer::new(2);
    let mut storages: Vec<&Entry> = Vec::new();
    match root {
        Root::StateDict(sd) => ordered_dict(&mut w, sd, &mut storages),
        Root::WithMeta { meta, state_dict } => {
            w.empty_dict();
            w.mark();
            w.str("meta");
            w.empty_dict();
            w.mark();
            for (k, v) in meta {
                w.str(k);
                w.str(v);
            }
            w.setitems();
            w.str("state_dict");
            ordered_dict(&mut w, state_dict, &mut storages);
            w.setitems();
        }
    }
    let pickle = w.finish();

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        zip.start_file(format!("archive/{name}"), opts)?;
        zip.write_all(bytes)?;
        Ok(())
    };
    put("data.pkl", &pickle)?;
    put("byteorder", b"little")?;
    for (i, e) in storages.iter().enumerate() {
        put(&format!("data/{i}"), &e.values.le_bytes())?;
    }
    put("version", b"3\n")?;
    Ok(zip.finish()?.into_inner())
}

/// `collections.OrderedDict` of the entries, each a tensor over its own storage.
fn ordered_dict<'a>(w: &mut Writer, sd: &'a StateDict, storages: &mut Vec<&'a Entry>) {
    w.global("collections", "OrderedDict");
    w.empty_tuple();
    w.reduce();
    w.mark();
    for e in sd {
        w.str(&e.name);
        tensor(w, e, storages.len());
        storages.push(e);
    }
    w.setitems();
}

/// `torch._utils._rebuild_tensor_v2(storage, 0, shape, contiguous strides, False, OrderedDict())`.
fn tensor(w: &mut Writer, e: &Entry, key: usize) {
    let storage = match e.values {
        Values::F32(_) => "FloatStorage",
        Values::I64(_) => "LongStorage",
    };
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.mark();
    // The persistent id torch.load resolves to the storage in data/<key>.
    w.mark();
    w.str("storage");
    w.global("torch", storage);
    w.str(&key.to_string());
    w.str("cpu");
    w.int(e.values.len() as i64);
    w.tuple();
    w.persistent_id();
    w.int(0);
    w.int_tuple(&e.shape);
    let mut strides = vec![1usize; e.shape.len()];
    for i in (0..e.shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * e.shape[i + 1];
    }
    w.int_tuple(&strides);
    w.bool(false);
    w.global("collections", "OrderedDict");
    w.empty_tuple();
    w.reduce();
    w.tuple();
    w.reduce();
}
