//! Segmentation datasets on disk: CamVid (VOC layout) lists and reads every label map as stored
//! (byte-identical to the files, every value a class or 255, sizes equal to the images'); palette
//! PNGs give their indices; Cityscapes raw label ids map to train ids; ADE20K reduces label 0;
//! a missing label, a wrong value and a size mismatch are errors naming the file.

use std::path::{Path, PathBuf};

use loader::segsource::{checked_label, read_png_values, SegDataset, SegFormat, IGNORE};

fn camvid() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/camvid")
}

fn voc() -> SegFormat {
    SegFormat::Voc {
        label_dir: "SegmentationClass".into(),
    }
}

#[test]
fn camvid_val_labels_are_the_files_bytes() {
    let ds = SegDataset::open(&camvid(), voc(), "val", 11).unwrap();
    assert_eq!(ds.len(), 101);
    let train = SegDataset::open(&camvid(), voc(), "train", 11).unwrap();
    assert_eq!(train.len(), 367);
    let mut seen = [false; 256];
    for i in 0..ds.len() {
        let map = checked_label(&ds, i).unwrap();
        // Independent decode: the image crate's 8-bit grey reading of the same file.
        let want = image::open(&ds.pairs[i].label).unwrap().into_luma8();
        assert_eq!((map.width, map.height), (480, 360));
        assert_eq!(
            map.labels,
            want.into_raw(),
            "{}",
            ds.pairs[i].label.display()
        );
        for &v in &map.labels {
            seen[v as usize] = true;
        }
    }
    let values: Vec<usize> = (0..256).filter(|&v| seen[v]).collect();
    assert!(values.iter().all(|&v| v < 11 || v == 255), "{values:?}");
    assert!(values.len() >= 10, "{values:?}");
}

fn write_png(path: &Path, w: u32, h: u32, values: &[u8], palette: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut e = png::Encoder::new(f, w, h);
    if palette {
        e.set_color(png::ColorType::Indexed);
        e.set_palette(
            (0..256u32)
                .flat_map(|i| [i as u8, 255 - i as u8, 7])
                .collect::<Vec<_>>(),
        );
    } else {
        e.set_color(png::ColorType::Grayscale);
    }
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(values).unwrap();
}

fn write_jpeg(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb([90, 120, 30]))
        .save(path)
        .unwrap();
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seg-datasets-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn palette_labels_are_read_as_indices_and_bad_values_are_refused() {
    let root = scratch("voc");
    std::fs::create_dir_all(root.join("ImageSets/Segmentation")).unwrap();
    std::fs::write(root.join("ImageSets/Segmentation/train.txt"), "a\nb\n").unwrap();
    let values: Vec<u8> = vec![0, 1, 20, 255, 3, 3];
    write_png(&root.join("SegmentationClass/a.png"), 3, 2, &values, true);
    write_jpeg(&root.join("JPEGImages/a.jpg"), 3, 2);
    // b: one value that is no VOC class.
    write_png(
        &root.join("SegmentationClass/b.png"),
        3,
        2,
        &[0, 0, 40, 0, 0, 0],
        false,
    );
    write_jpeg(&root.join("JPEGImages/b.jpg"), 4, 2);
    let ds = SegDataset::open(&root, voc(), "train", 21).unwrap();
    assert_eq!(read_png_values(&ds.pairs[0].label).unwrap().labels, values);
    assert_eq!(checked_label(&ds, 0).unwrap().labels, values);
    let e = format!("{:#}", ds.label(1).unwrap_err());
    assert!(e.contains("b.png") && e.contains("label value 40"), "{e}");
    // A size mismatch names both files.
    let ok = SegDataset::open(&root, voc(), "train", 41).unwrap();
    let e = format!("{:#}", checked_label(&ok, 1).unwrap_err());
    assert!(
        e.contains("b.png: label map is 3×2") && e.contains("4×2"),
        "{e}"
    );
    // A missing label file is an error at open.
    std::fs::remove_file(root.join("SegmentationClass/b.png")).unwrap();
    let e = format!(
        "{:#}",
        SegDataset::open(&root, voc(), "train", 21).unwrap_err()
    );
    assert!(e.contains("b.png: label map missing"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn cityscapes_raw_ids_map_to_train_ids_and_ade_reduces_zero() {
    let root = scratch("city");
    let img = root.join("leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    image::RgbImage::new(4, 1).save(&img).unwrap();
    write_png(
        &root.join("gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"),
        4,
        1,
        &[7, 33, 0, 26],
        false,
    );
    let ds = SegDataset::open(
        &root,
        SegFormat::Cityscapes {
            raw_label_ids: true,
        },
        "val",
        19,
    )
    .unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(
        checked_label(&ds, 0).unwrap().labels,
        vec![0, 18, IGNORE, 13]
    );
    // Without raw ids it expects the converted train-id files.
    let e = format!(
        "{:#}",
        SegDataset::open(
            &root,
            SegFormat::Cityscapes {
                raw_label_ids: false
            },
            "val",
            19
        )
        .unwrap_err()
    );
    assert!(
        e.contains("_gtFine_labelTrainIds.png: label map missing"),
        "{e}"
    );

    let ade = root.join("ADEChallengeData2016");
    write_jpeg(&ade.join("images/validation/ADE_val_00000001.jpg"), 3, 1);
    write_png(
        &ade.join("annotations/validation/ADE_val_00000001.png"),
        3,
        1,
        &[0, 1, 150],
        false,
    );
    let ds = SegDataset::open(&root, SegFormat::Ade20k, "val", 150).unwrap();
    assert_eq!(checked_label(&ds, 0).unwrap().labels, vec![IGNORE, 0, 149]);
    std::fs::remove_dir_all(&root).unwrap();
}
