//! Per-op cost on a 224×224 view (and decode of the shared photos), to see where a sample's time
//! goes. Run: `cargo bench -p loader --bench ops`.

use std::hint::black_box;
use std::time::Instant;

use loader::image::RgbImage;
use loader::ops::{blur::Blur, color, crop::CropBox, flip, resize::Resizer};

fn time(name: &str, iters: usize, mut f: impl FnMut()) {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / iters as f64;
    println!("{name:36} {us:9.1} µs");
}

fn main() {
    let photos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let bytes = std::fs::read(photos.join("0000_alpaca_v0.jpg")).expect("shared photos");
    let mut dec = loader::decode::Decoder::new(1 << 28);
    let info = dec.probe(&bytes).unwrap();
    let mut src = RgbImage::default();
    time(
        &format!("decode {}x{}", info.width, info.height),
        200,
        || {
            dec.decode(&bytes, &info, (1, 1), &mut src).unwrap();
        },
    );
    let mut r = Resizer::new();
    let mut out = vec![0u8; 224 * 224 * 3];
    let crop = CropBox {
        x: 30,
        y: 20,
        w: 300,
        h: 250,
    };
    time("resize 300x250 -> 224", 500, || {
        let v = src.view().crop(crop.x, crop.y, crop.w, crop.h);
        r.resize(v, [0.0, 0.0, 300.0, 250.0], 224, 224, black_box(&mut out));
    });
    // Every op starts from the same resized view (the copy costs a few µs, shown first).
    time("resize 224x300 -> 224 (vertical only)", 500, || {
        let v = src.view().crop(0, 0, 224, 280);
        r.resize(v, [0.0, 0.0, 224.0, 280.0], 224, 224, black_box(&mut out));
    });
    time("resize 300x224 -> 224 (horizontal only)", 500, || {
        let v = src.view().crop(0, 0, 300, 224);
        r.resize(v, [0.0, 0.0, 300.0, 224.0], 224, 224, black_box(&mut out));
    });
    let base = out.clone();
    let mut t = vec![0u8; 300 * 250 * 3];
    time("transpose 224x224", 500, || {
        let v = loader::image::ImageView {
            data: &base,
            width: 224,
            height: 224,
            stride: 224 * 3,
        };
        loader::ops::transpose::transpose_rgb(v, black_box(&mut t));
    });
    time("transpose 300x250 (crop of the photo)", 500, || {
        let v = src.view().crop(0, 0, 300, 250);
        loader::ops::transpose::transpose_rgb(v, black_box(&mut t));
    });
    let mut d = base.clone();
    time("(copy of the view)", 500, || {
        d.copy_from_slice(black_box(&base))
    });
    let mut b = Blur::new();
    type Op<'a> = Box<dyn FnMut(&mut [u8]) + 'a>;
    let ops: Vec<(&str, Op)> = vec![
        ("brightness", Box::new(|d| color::adjust_brightness(d, 1.2))),
        ("contrast", Box::new(|d| color::adjust_contrast(d, 0.8))),
        ("saturation", Box::new(|d| color::adjust_saturation(d, 1.3))),
        ("hue", Box::new(|d| color::adjust_hue(d, 0.05))),
        ("grayscale", Box::new(color::grayscale)),
        (
            "blur sigma 1.0",
            Box::new(move |d| b.gaussian(d, 224, 224, 1.0)),
        ),
        ("flip", Box::new(|d| flip::hflip(d, 224))),
        ("solarize", Box::new(|d| color::solarize(d, 128))),
    ];
    for (name, mut op) in ops {
        time(name, 300, || {
            d.copy_from_slice(&base);
            op(black_box(&mut d));
        });
    }
}
