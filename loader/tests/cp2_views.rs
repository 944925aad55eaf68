//! CP² composites: the pasted window always covers 50–80 % of the view (±1 feature cell) and is
//! never empty, over 10⁵ draws; inside the mask the composite equals the foreground view, outside it
//! equals the background view (both recomputed independently from the drawn parameters).

use std::path::PathBuf;
use std::sync::Arc;

use config::{Cp2Config, DatasetConfig, DatasetLayout};
use loader::augment::Renderer;
use loader::decode::Decoder;
use loader::image::RgbImage;
use loader::source::Dataset;
use loader::views::cp2::{draw_window, Cp2};
use loader::views::Views;
use loader::worker::{ImageIo, SampleInfo, SkipLog};
use rand::SeedableRng;

#[test]
fn window_area_is_always_within_range_and_never_empty() {
    let cfg = Cp2Config::default();
    let size = cfg.view.size;
    let cell = (cfg.output_stride * cfg.output_stride) as f64 / (size * size) as f64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for _ in 0..100_000 {
        let w = draw_window(&mut rng, size, cfg.paste_area, cfg.paste_ratio);
        assert!(
            w.w > 0 && w.h > 0 && w.x + w.w <= size && w.y + w.h <= size,
            "{w:?}"
        );
        let frac = (w.w * w.h) as f64 / (size * size) as f64;
        assert!(frac >= 0.5 - cell && frac <= 0.8 + cell, "{w:?}: {frac}");
        // At OS16 the window always covers at least one cell centre.
        let g = size / cfg.output_stride;
        let covered = (0..g * g).any(|k| {
            let (cy, cx) = ((k / g) * 16 + 8, (k % g) * 16 + 8);
            cy >= w.y && cy < w.y + w.h && cx >= w.x && cx < w.x + w.w
        });
        assert!(covered);
    }
}

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos")
}

fn decode(path: PathBuf) -> RgbImage {
    let bytes = std::fs::read(path).unwrap();
    let mut img = RgbImage::default();
    Decoder::new(1 << 28).decode_full(&bytes, &mut img).unwrap();
    img
}

#[test]
fn composite_is_foreground_inside_and_background_outside() {
    let ds = Arc::new(
        Dataset::open(&DatasetConfig {
            root: photos(),
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: Some(40),
        })
        .unwrap(),
    );
    let cfg = Cp2Config::default();
    let cp2 = Cp2::new(cfg.clone());
    let size = cfg.view.size;
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, false);
    for position in 0..5u64 {
        let info = SampleInfo {
            seed: 4,
            epoch: 0,
            position,
            index: position as usize * 7,
            dataset_len: ds.len(),
        };
        let mut sample = proto_shm::SampleBuffers::new(&cp2.schema(1));
        cp2.fill(&info, &mut io, &mut sample.tensors()).unwrap();
        let bufs = sample.into_vecs();
        let d = cp2.draw(&info);
        let mut r = Renderer::new();
        let fg = decode(ds.path_of(info.index));
        for c in 0..2 {
            let mut fg_view = vec![0u8; size * size * 3];
            let p = cp2.view_params(&info, c as u32, fg.width, fg.height);
            r.render(&fg, (fg.width, fg.height), &p, &mut fg_view);
            let bg = decode(ds.path_of(d.backgrounds[c]));
            let mut bg_view = vec![0u8; size * size * 3];
            let p = cp2.view_params(&info, 2 + c as u32, bg.width, bg.height);
            r.render(&bg, (bg.width, bg.height), &p, &mut bg_view);
            let (view, mask) = (&bufs[c], &bufs[2 + c]);
            let mut inside = 0;
            for i in 0..size * size {
                let want = if mask[i] == 1 {
                    &fg_view[i * 3..i * 3 + 3]
                } else {
                    &bg_view[i * 3..i * 3 + 3]
                };
                assert_eq!(&view[i * 3..i * 3 + 3], want, "composite {c} pixel {i}");
                inside += mask[i] as usize;
            }
            let w = d.windows[c];
            assert_eq!(inside, w.w * w.h);
            // The mask is exactly the drawn window.
            for y in 0..size {
                for x in 0..size {
                    let in_window = x >= w.x && x < w.x + w.w && y >= w.y && y < w.y + w.h;
                    assert_eq!(
                        mask[y * size + x],
                        in_window as u8,
                        "mask {c} at ({x}, {y})"
                    );
                }
            }
            // The grid mask samples the cell centres.
            let g = size / 16;
            for (k, &cell) in bufs[4 + c].iter().enumerate() {
                let (cy, cx) = ((k / g) * 16 + 8, (k % g) * 16 + 8);
                assert_eq!(cell, mask[cy * size + cx]);
            }
        }
    }
}
