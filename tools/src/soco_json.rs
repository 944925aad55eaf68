//! SoCo's proposal JSON (`{basename-without-extension: [[x, y, w, h], ...]}`) written from a
//! proposal store: `precompute-proposals export` and the Python reference of `profile-throughput
//! --method soco` read the same file.

use std::path::Path;

use anyhow::{Context, Result};
use loader::proposals::ProposalStore;

/// Writes `store`'s boxes to `json` keyed by file stem; returns how many images it wrote.
pub fn export(store: &Path, json: &Path) -> Result<usize> {
    let s = ProposalStore::open(store)?;
    let mut keys: Vec<&String> = s.keys().collect();
    keys.sort();
    let mut out = serde_json::Map::new();
    for k in keys {
        let p = s.get(k)?.context("key vanished")?;
        let stem = Path::new(k)
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(stem, serde_json::json!(p.boxes));
    }
    std::fs::write(json, serde_json::to_vec(&out)?)
        .with_context(|| format!("writing {}", json.display()))?;
    Ok(out.len())
}
