//! `preview` draws contact sheets of real views (MoCo v2, CP², SoCo, patch rotation) from the shared photos.

use std::path::PathBuf;
use std::process::Command;

mod common;

#[test]
fn preview_sheets_for_mocov2_cp2_and_patch_rotation() {
    let dir = common::tempdir("preview", "sheets");
    let photos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    for (name, method) in [
        ("mocov2", "MocoV2(view: (size: 96))"),
        ("cp2", "Cp2(view: (size: 96), output_stride: 16)"),
        ("soco", "Soco(image_size: 96, v3_size: 48)"),
    ] {
        let cfg = dir.join(format!("{name}.ron"));
        std::fs::write(
            &cfg,
            format!(r#"RunConfig(name: "{name}", dataset: (root: "{}", layout: Flat), method: {method})"#, photos.display()),
        )
        .unwrap();
        let png = dir.join(format!("{name}.png"));
        let out = Command::new(common::workspace_bin("tools", "preview"))
            .arg("--config")
            .arg(&cfg)
            .args(["--samples", "4", "--out"])
            .arg(&png)
            .env("DENSEPRE_CACHE_DIR", dir.join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let img = image::open(&png).unwrap().into_rgb8();
        // Two 96-px views per row, 4 rows, 4-px gutters.
        // SoCo: V1, V2, V1, V3 per row.
        let cols = if name == "soco" { 4 } else { 2 };
        assert_eq!((img.width(), img.height()), (cols * 100 + 4, 4 * 100 + 4));
        // Real pictures, not blank tiles: many distinct colours.
        let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 1000, "{name}: {} colours", distinct.len());
        if name == "soco" {
            // Box outlines in the id palette (id 1 red, id 2 green, ...).
            let outlined = img
                .pixels()
                .filter(|p| p.0 == [255, 60, 60] || p.0 == [60, 220, 60])
                .count();
            assert!(
                outlined > 100,
                "SoCo sheet lacks box outlines ({outlined} px)"
            );
        }
        if name == "cp2" {
            assert!(
                img.pixels().any(|p| p.0 == [255, 220, 0]),
                "CP² sheet lacks window outlines"
            );
        }
    }
}
