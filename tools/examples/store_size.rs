//! ImageNet-scale proposal store size from a real store: the real per-image boxes of STORE (made
//! by `precompute-proposals run`) are replicated under ImageNet-style keys
//! (`train/nXXXXXXXX/nXXXXXXXX_N.JPEG`, 1280 images per class) into IMAGES images, written as a
//! real store, and its bytes per image extrapolated to ImageNet's 1,281,167 images.
//!
//!     cargo run --release -p tools --example store_size -- /tmp/photos.pstore [IMAGES]

use loader::proposals::{ImageProposals, ProposalStore, StoreWriter, BLOCK_IMAGES};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let src = ProposalStore::open(std::path::Path::new(args.get(1).expect("STORE")))?;
    let n: usize = args.get(2).map_or(Ok(25_600), |s| s.parse())?;
    let mut keys: Vec<&String> = src.keys().collect();
    keys.sort();
    let real: Vec<ImageProposals> = keys.iter().map(|k| src.get(k).unwrap().unwrap()).collect();
    let mut items: Vec<ImageProposals> = (0..n)
        .map(|i| {
            let wnid = 1_440_764 + (i / 1280) * 7919;
            ImageProposals {
                key: format!("train/n{wnid:08}/n{wnid:08}_{}.JPEG", 10_026 + i * 7),
                // A stride coprime with the store's size: neighbouring images differ.
                ..real[(i * 37) % real.len()].clone()
            }
        })
        .collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let out = std::env::temp_dir().join(format!("store-size-{}.pstore", std::process::id()));
    let mut w = StoreWriter::open(&out)?;
    for block in items.chunks(BLOCK_IMAGES) {
        w.append_block(block)?;
    }
    w.finish()?;
    let bytes = std::fs::metadata(&out)?.len() as f64;
    std::fs::remove_file(&out)?;
    let boxes: usize = items.iter().map(|i| i.boxes.len()).sum();
    println!(
        "{n} images, {:.1} boxes per image: {:.1} bytes per image -> ImageNet (1,281,167 images) {:.1} MB",
        boxes as f64 / n as f64,
        bytes / n as f64,
        bytes / n as f64 * 1_281_167.0 / 1e6
    );
    Ok(())
}
