//! Patch-rotation views: undoing each patch's rotation with the label the ring carries gives back
//! exactly the augmented view rendered independently from the drawn parameters.

use std::path::PathBuf;
use std::sync::Arc;

use config::{DatasetConfig, DatasetLayout, PatchRotationConfig};
use loader::augment::{self, Renderer};
use loader::decode::Decoder;
use loader::image::RgbImage;
use loader::rng::{sample_rng, Stream};
use loader::source::Dataset;
use loader::views::patch_rotation::{rotate_patch, PatchRotation};
use loader::views::Views;
use loader::worker::{ImageIo, SampleInfo, SkipLog};

#[test]
fn unrotating_with_the_labels_restores_the_view() {
    let photos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let ds = Arc::new(
        Dataset::open(&DatasetConfig {
            root: photos,
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: Some(20),
        })
        .unwrap(),
    );
    let mut cfg = PatchRotationConfig::default();
    cfg.view.size = 96;
    cfg.grid = 4;
    let plr = PatchRotation::new(cfg.clone());
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, false);
    let mut counts = [0usize; 4];
    for position in 0..8u64 {
        let info = SampleInfo {
            seed: 2,
            epoch: 0,
            position,
            index: position as usize * 2,
            dataset_len: ds.len(),
        };
        let schema = plr.schema(1);
        let mut bufs: Vec<Vec<u8>> = schema
            .tensors
            .iter()
            .map(|t| vec![0u8; t.sample_bytes()])
            .collect();
        {
            let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            plr.fill(&info, &mut io, &mut out).unwrap();
        }
        // Independent render of the un-rotated view.
        let bytes = std::fs::read(ds.path_of(info.index)).unwrap();
        let mut dec = Decoder::new(1 << 28);
        let h = dec.probe(&bytes).unwrap();
        let mut img = RgbImage::default();
        dec.decode(&bytes, &h, (1, 1), &mut img).unwrap();
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(0));
        let p = augment::draw(&mut rng, &cfg.view, img.width, img.height);
        let mut want = vec![0u8; 96 * 96 * 3];
        Renderer::new().render(&img, (img.width, img.height), &p, &mut want);
        // Undo each patch's rotation with the label.
        let mut got = bufs[0].clone();
        let mut tmp = Vec::new();
        for (k, &r) in bufs[1].iter().enumerate() {
            assert!(r < 4);
            counts[r as usize] += 1;
            rotate_patch(
                &mut got,
                96,
                (k % 4) * 24,
                (k / 4) * 24,
                24,
                (4 - r) % 4,
                &mut tmp,
            );
        }
        assert_eq!(got, want, "sample {position}");
    }
    assert!(
        counts.iter().all(|&c| c > 10),
        "rotation labels not spread: {counts:?}"
    );
}
