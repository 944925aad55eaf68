//! Every kind of bad or odd file found in real datasets, made here by the test: each decodes
//! correctly (CMYK, greyscale, PNG under a .JPEG name, tiny images) or is skipped with the right
//! reason and replaced deterministically — never a crash, never a hang.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{DatasetConfig, DatasetLayout};
use loader::decode::SkipKind;
use loader::source::Dataset;
use loader::worker::{ImageIo, SampleInfo, SkipLog};

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/reference/ops")
        .join(name)
}

fn a_jpeg() -> Vec<u8> {
    std::fs::read(photos().join("0000_alpaca_v0.jpg")).unwrap()
}

/// A JPEG whose SOF header claims `w × h` (the scan data stays that of a small image).
fn jpeg_with_size(w: u16, h: u16) -> Vec<u8> {
    let mut b = a_jpeg();
    let mut i = 2;
    while i + 9 < b.len() {
        assert_eq!(b[i], 0xFF);
        let m = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if (0xC0..=0xC2).contains(&m) {
            b[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
            b[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
            return b;
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

fn tiny_jpeg(w: usize, h: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 10) as u8, 99])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

fn png_bytes() -> Vec<u8> {
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// None: must decode; Some(kind): must be skipped for this reason.
    expect: Option<SkipKind>,
}

fn cases() -> Vec<Case> {
    let jpeg = a_jpeg();
    let mut corrupt = jpeg.clone();
    // Garbage over the entropy-coded data and the quantisation tables.
    for (i, b) in corrupt.iter_mut().enumerate().skip(20).take(600) {
        *b = (i * 37 % 251) as u8;
    }
    vec![
        Case {
            name: "good.JPEG",
            bytes: jpeg.clone(),
            expect: None,
        },
        Case {
            name: "truncated.JPEG",
            bytes: jpeg[..jpeg.len() / 2].to_vec(),
            expect: Some(SkipKind::Truncated),
        },
        Case {
            name: "corrupt.JPEG",
            bytes: corrupt,
            expect: Some(SkipKind::Corrupt),
        },
        Case {
            name: "cmyk.JPEG",
            bytes: std::fs::read(fixture("cmyk.jpg")).unwrap(),
            expect: None,
        },
        Case {
            name: "gray.JPEG",
            bytes: std::fs::read(fixture("gray.jpg")).unwrap(),
            expect: None,
        },
        Case {
            name: "png_named.JPEG",
            bytes: png_bytes(),
            expect: None,
        },
        Case {
            name: "zero.JPEG",
            bytes: Vec::new(),
            expect: Some(SkipKind::Empty),
        },
        Case {
            name: "text.JPEG",
            bytes: b"this is not an image\n".to_vec(),
            expect: Some(SkipKind::NotAnImage),
        },
        Case {
            name: "bomb.JPEG",
            bytes: jpeg_with_size(30000, 30000),
            expect: Some(SkipKind::TooLarge),
        },
        Case {
            name: "tiny.JPEG",
            bytes: tiny_jpeg(20, 15),
            expect: None,
        },
    ]
}

fn write_dataset(dir: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names = Vec::new();
    for c in cases() {
        std::fs::write(dir.join(c.name), &c.bytes).unwrap();
        names.push(c.name);
    }
    names
}

/// A scratch folder removed when the test ends.
fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("loader-bad-{tag}-"))
        .tempdir()
        .unwrap()
}

fn open(dir: &Path) -> Arc<Dataset> {
    Arc::new(
        Dataset::open(&DatasetConfig {
            root: dir.to_path_buf(),
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: None,
        })
        .unwrap(),
    )
}

fn info(index: usize, len: usize) -> SampleInfo {
    SampleInfo {
        seed: 1,
        epoch: 0,
        position: index as u64,
        index,
        dataset_len: len,
    }
}

#[test]
fn each_bad_file_decodes_or_is_skipped_for_its_reason() {
    let scratch = tempdir("each");
    let dir = scratch.path();
    write_dataset(dir);
    let ds = open(dir);
    for c in cases() {
        let index = ds
            .entries
            .iter()
            .position(|e| e.path == Path::new(c.name))
            .unwrap();
        let skips = Arc::new(SkipLog::default());
        // Full-resolution decode (no DCT scaling) so the decoded size is the header's.
        let mut io = ImageIo::new(ds.clone(), skips.clone(), 89_478_485, false);
        let loaded = io
            .load(&info(index, ds.len()), index, 0, |w, h| ((w, h), []))
            .unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
        match &c.expect {
            None => {
                assert_eq!(
                    loaded.index,
                    index,
                    "{} should decode, was replaced ({:?})",
                    c.name,
                    skips.counts()
                );
                let img = &io.images[0];
                assert_eq!((img.width, img.height), loaded.plan, "{}", c.name);
                assert!(
                    img.data.iter().any(|&v| v != img.data[0]),
                    "{} decoded flat",
                    c.name
                );
            }
            Some(kind) => {
                assert_ne!(loaded.index, index, "{} should be skipped", c.name);
                // (A replacement drawn at random may itself be one of the bad files here.)
                assert!(
                    skips.counts().get(kind).is_some_and(|&n| n >= 1),
                    "{}: {:?}",
                    c.name,
                    skips.counts()
                );
                assert!(cases()
                    .iter()
                    .any(|g| g.expect.is_none()
                        && ds.entries[loaded.index].path == Path::new(g.name)));
                // The replacement is a good file and is the same on every run.
                let again =
                    ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 89_478_485, true)
                        .load(&info(index, ds.len()), index, 0, |w, h| ((w, h), []))
                        .unwrap();
                assert_eq!(
                    again.index, loaded.index,
                    "{}: replacement not deterministic",
                    c.name
                );
            }
        }
    }
}

#[test]
fn unreadable_file_is_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempdir("perm");
    let dir = scratch.path();
    std::fs::write(dir.join("a.JPEG"), a_jpeg()).unwrap();
    std::fs::write(dir.join("locked.JPEG"), a_jpeg()).unwrap();
    std::fs::set_permissions(
        dir.join("locked.JPEG"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let ds = open(dir);
    let index = ds
        .entries
        .iter()
        .position(|e| e.path == Path::new("locked.JPEG"))
        .unwrap();
    // Root ignores permission bits; drop that privilege for this thread only, as a normal user
    // would run. (Capabilities are per thread on Linux.)
    let _ = caps::drop(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_DAC_OVERRIDE,
    );
    let _ = caps::drop(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_DAC_READ_SEARCH,
    );
    let skips = Arc::new(SkipLog::default());
    let mut io = ImageIo::new(ds.clone(), skips.clone(), 89_478_485, true);
    let loaded = io
        .load(&info(index, ds.len()), index, 0, |_, _| ((), []))
        .unwrap();
    assert_ne!(loaded.index, index);
    assert_eq!(
        skips.counts().get(&SkipKind::Unreadable),
        Some(&1),
        "{:?}",
        skips.counts()
    );
}

#[test]
fn a_dataset_of_only_bad_files_is_an_error_not_a_hang() {
    let scratch = tempdir("allbad");
    let dir = scratch.path();
    std::fs::write(dir.join("a.JPEG"), b"").unwrap();
    std::fs::write(dir.join("b.JPEG"), b"nope").unwrap();
    let ds = open(dir);
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 89_478_485, true);
    let err = io
        .load(&info(0, ds.len()), 0, 0, |_, _| ((), []))
        .err()
        .expect("must fail");
    assert!(
        format!("{err:#}").contains("unusable images in a row"),
        "{err:#}"
    );
}

#[test]
fn fifo_is_not_opened() {
    let scratch = tempdir("fifo");
    let dir = scratch.path();
    std::fs::write(dir.join("a.JPEG"), a_jpeg()).unwrap();
    let fifo = dir.join("pipe.JPEG");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // A FIFO is not listed as an image file, and even if asked for directly it is refused.
    let ds = open(dir);
    assert_eq!(ds.len(), 1);
}

#[test]
fn missing_root_and_empty_dataset_are_one_line_errors() {
    let e = Dataset::open(&DatasetConfig {
        root: "/nonexistent/imagenet".into(),
        layout: DatasetLayout::Flat,
        proposals: None,
        max_images: None,
    })
    .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "dataset root /nonexistent/imagenet does not exist or is not a directory"
    );
    let scratch = tempdir("empty");
    let dir = scratch.path();
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    let e = Dataset::open(&DatasetConfig {
        root: dir.to_path_buf(),
        layout: DatasetLayout::Flat,
        proposals: None,
        max_images: None,
    })
    .unwrap_err();
    assert!(
        format!("{e:#}").starts_with("no images found under"),
        "{e:#}"
    );
}

#[test]
fn image_folder_labels_follow_sorted_classes_and_empty_classes_are_reported() {
    let scratch = tempdir("folder");
    let dir = scratch.path();
    for (class, files) in [("n02", 2), ("n01", 1), ("n03_empty", 0)] {
        let d = dir.join("train").join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..files {
            std::fs::write(d.join(format!("{i}.JPEG")), a_jpeg()).unwrap();
        }
    }
    let cfg = DatasetConfig {
        root: dir.to_path_buf(),
        layout: DatasetLayout::ImageFolder {
            split: "train".into(),
        },
        proposals: None,
        max_images: None,
    };
    let cache = dir.join("cache");
    std::env::set_var("DENSEPRE_CACHE_DIR", &cache);
    let ds = Dataset::open(&cfg).unwrap();
    assert_eq!(ds.classes, vec!["n01", "n02", "n03_empty"]);
    assert_eq!(ds.empty_classes, vec!["n03_empty"]);
    let labels: Vec<i64> = ds.entries.iter().map(|e| e.label).collect();
    assert_eq!(labels, vec![0, 1, 1]);
    assert!(!ds.from_cache);
    // Second open comes from the cache; adding a file invalidates it.
    let again = Dataset::open(&cfg).unwrap();
    assert!(again.from_cache);
    assert_eq!(again.entries, ds.entries);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("train/n01/new.JPEG"), a_jpeg()).unwrap();
    let fresh = Dataset::open(&cfg).unwrap();
    assert!(!fresh.from_cache);
    assert_eq!(fresh.len(), 4);
}
