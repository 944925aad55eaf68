//! A JPEG cut inside its header — at every marker boundary of a real photo before and just after
//! SOS, and a bare SOI + SOF — or with a bad table index, among good photos, through the loader's own image I/O and the
//! MoCo v2 / CP² views, with partial decoding on and off and one decoder reused across files (as
//! a worker does): each sample is made (the cut file skipped and replaced), never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{Cp2Config, DatasetConfig, DatasetLayout, MocoV2Config};
use loader::source::Dataset;
use loader::views::{cp2::Cp2, TwoCrop, Views};
use loader::worker::{ImageIo, SampleInfo, SkipLog};

fn photos() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    v.sort();
    v.truncate(15);
    v
}

/// Offsets of every marker of the header (up to and including SOS's segment end).
fn marker_cuts(jpeg: &[u8]) -> Vec<(String, usize)> {
    let mut cuts = vec![("after SOI".to_string(), 2)];
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        cuts.push((format!("before marker {marker:#04x}"), at));
        cuts.push((format!("inside marker {marker:#04x}"), at + 3));
        at += 2 + len;
        cuts.push((format!("after marker {marker:#04x}"), at));
        if marker == 0xDA {
            cuts.push(("16 bytes into the scan".into(), at + 16));
            break;
        }
    }
    cuts
}

/// SOI + a baseline SOF for 640×480, 3 components, and nothing else.
fn soi_sof_only() -> Vec<u8> {
    let mut b = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03,
    ];
    for id in 1..=3u8 {
        b.extend([id, if id == 1 { 0x22 } else { 0x11 }, (id > 1) as u8]);
    }
    b
}

#[test]
fn a_header_cut_anywhere_is_skipped_never_a_panic() {
    let photos = photos();
    let good = std::fs::read(&photos[3]).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = marker_cuts(&good)
        .into_iter()
        .map(|(what, at)| (what, good[..at].to_vec()))
        .collect();
    cases.push(("SOI + SOF only".into(), soi_sof_only()));
    // A complete header with a bad table index: libjpeg fails inside DQT, and its handle must
    // not carry that state into the next (good) file.
    let dqt = good.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
    let mut bogus = good.clone();
    bogus[dqt + 4] = 0x09;
    cases.push(("bogus DQT index".into(), bogus));
    let views: Vec<(&str, Box<dyn Views>)> = vec![
        (
            "mocov2",
            Box::new(TwoCrop::new("mocov2", MocoV2Config::default().view)),
        ),
        ("cp2", Box::new(Cp2::new(Cp2Config::default()))),
    ];
    let mut failures = Vec::new();
    for (what, bytes) in &cases {
        let dir = tempfile::tempdir().unwrap();
        for p in &photos {
            std::fs::copy(p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
        // Sorted first, so the cut file is read right after a good one and before others.
        std::fs::write(dir.path().join("0000_cut.jpg"), bytes).unwrap();
        let ds = Arc::new(
            Dataset::open(&DatasetConfig {
                root: dir.path().to_path_buf(),
                layout: DatasetLayout::Flat,
                proposals: None,
                max_images: None,
            })
            .unwrap(),
        );
        for (name, v) in &views {
            for partial in [true, false] {
                let skips = Arc::new(SkipLog::default());
                let mut io = ImageIo::new(ds.clone(), skips.clone(), 1 << 28, true);
                io.partial_decode = partial;
                for position in 0..2 * ds.len() as u64 {
                    // The cut file every other sample, a good photo between.
                    let index = if position % 2 == 0 {
                        0
                    } else {
                        1 + (position as usize / 2) % 15
                    };
                    let info = SampleInfo {
                        seed: 5,
                        epoch: 0,
                        position,
                        index,
                        dataset_len: ds.len(),
                    };
                    let mut sample = proto_shm::SampleBuffers::new(&v.schema(1));
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        v.fill(&info, &mut io, &mut sample.tensors())
                    }));
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failures
                            .push(format!("{what} / {name} / partial {partial}: error {e:#}")),
                        Err(_) => failures.push(format!(
                            "{what} / {name} / partial {partial}: PANIC at position {position}"
                        )),
                    }
                }
                assert!(
                    skips.counts().values().sum::<u64>() >= 1,
                    "{what}: the cut file was never skipped ({:?})",
                    skips.counts()
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
