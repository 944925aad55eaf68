//! Where selective search spends its time on one real photo: `cargo bench -p selective-search`.
use std::time::Instant;

fn main() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/photos/0006_chamaeleon_v0.jpg");
    let img = image::open(&p).expect("shared photo").into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();
    let params = selective_search::Params::default();
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for _ in 0..reps {
        let t = Instant::now();
        let labels = selective_search::felzenszwalb::segment(&rgb, w, h, &params);
        let seg = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let rects = selective_search::grouping::hierarchy(&rgb, w, h, &labels);
        let grp = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "{w}x{h}: felzenszwalb {seg:.1} ms, grouping {grp:.1} ms, {} regions",
            rects.len()
        );
    }
}
