//! The loader's 8-bit HSV conversions (mmseg's PhotoMetricDistortion goes through OpenCV's)
//! against OpenCV itself (tests/reference/make_hsv_fixtures.py → hsv.json): RGB → HSV exactly,
//! HSV → RGB within one unit (OpenCV's 8-bit path rounds its sector formula its own way; at
//! least half of the colours come out identical).

use loader::ops::photometric::{hsv_to_rgb, rgb_to_hsv};

fn triples(v: &serde_json::Value) -> Vec<[u8; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_array().unwrap();
            [0, 1, 2].map(|k| t[k].as_u64().unwrap() as u8)
        })
        .collect()
}

#[test]
fn hsv_conversions_match_opencv() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/hsv.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (rgb, hsv) = (triples(&fx["rgb"]), triples(&fx["hsv"]));
    for (c, want) in rgb.iter().zip(&hsv) {
        assert_eq!(rgb_to_hsv(*c), *want, "RGB {c:?}");
    }
    let (hsv_in, rgb_out) = (triples(&fx["hsv_in"]), triples(&fx["rgb_out"]));
    let mut exact = 0;
    for (c, want) in hsv_in.iter().zip(&rgb_out) {
        let got = hsv_to_rgb(*c);
        for k in 0..3 {
            assert!(
                (got[k] as i32 - want[k] as i32).abs() <= 1,
                "HSV {c:?}: {got:?} vs {want:?}"
            );
        }
        exact += (got == *want) as usize;
    }
    assert!(
        exact * 100 >= hsv_in.len() * 50,
        "only {exact} of {} exact",
        hsv_in.len()
    );
}
