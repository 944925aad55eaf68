//! The evaluation's scores against an independent numpy computation (mmseg's IoUMetric arithmetic,
//! `tests/reference/make_miou_fixtures.py`): ignore pixels, a class predicted but absent from the
//! ground truth (IoU 0, counted), a class neither present nor predicted (undefined, left out), a
//! class present but never predicted, and areas accumulated over several images — all exactly.

use trainer::eval::confusion::Confusion;

fn opt(v: &serde_json::Value) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(|x| x.as_f64()).collect()
}

#[test]
fn scores_equal_the_numpy_reference_exactly() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/miou.json"
    ))
    .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 3);
    for (n, case) in cases.iter().enumerate() {
        let classes = case["classes"].as_u64().unwrap() as usize;
        let mut c = Confusion::new(classes);
        for img in case["images"].as_array().unwrap() {
            let bytes = |k: &str| -> Vec<u8> {
                img[k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u8)
                    .collect()
            };
            c.add(&bytes("gt"), &bytes("pred")).unwrap();
        }
        assert_eq!(c.iou(), opt(&case["iou"]), "case {n}: IoU");
        assert_eq!(c.accuracy(), opt(&case["acc"]), "case {n}: accuracy");
        assert_eq!(c.miou(), case["miou"].as_f64().unwrap(), "case {n}: mIoU");
        assert_eq!(c.macc(), case["macc"].as_f64().unwrap(), "case {n}: mAcc");
        assert_eq!(c.aacc(), case["aacc"].as_f64().unwrap(), "case {n}: aAcc");
    }
}

#[test]
fn values_that_are_not_classes_are_refused() {
    let mut c = Confusion::new(3);
    let e = c.add(&[0, 7], &[0, 1]).unwrap_err().to_string();
    assert!(e.contains("pixel 1: label 7"), "{e}");
    assert_eq!(c.labelled(), 0, "a refused image counts nothing");
    assert!(c.add(&[0, 1], &[0]).is_err());
    // 255 is skipped whatever is predicted there.
    c.add(&[255, 2], &[0, 2]).unwrap();
    assert_eq!(c.labelled(), 1);
}
