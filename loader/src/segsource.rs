//! Segmentation datasets as they lie on disk (METHODS.md §6), as image/label-map pairs:
//! PASCAL VOC 2012 (`JPEGImages`, `SegmentationClass` or `SegmentationClassAug`,
//! `ImageSets/Segmentation/<split>.txt`) — CamVid in VOC layout too —, Cityscapes
//! (`leftImg8bit/<split>/<city>/*_leftImg8bit.png` with `gtFine/..._gtFine_labelTrainIds.png`, or
//! the raw `*_labelIds.png` mapped through the standard 19-class table) and ADE20K
//! (`ADEChallengeData2016/{images,annotations}/{training,validation}`, reduce_zero_label).
//!
//! Label maps are PNGs read as stored values: a palette PNG gives its indices (VOC's coloured
//! masks), not its colours. A missing label file is an error at open, naming it; a label map of
//! another size than its image, or with a value that is neither a class nor 255, is an error
//! naming the file and the value.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Label of pixels left out of training and evaluation.
pub const IGNORE: u8 = 255;

/// Where a dataset's pairs are and how its stored labels map to classes.
pub use config::SegFormat;

/// One image and its label map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegPair {
    pub image: PathBuf,
    pub label: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SegDataset {
    pub root: PathBuf,
    pub layout: SegFormat,
    pub classes: usize,
    pub pairs: Vec<SegPair>,
}

/// Cityscapes label ids of the 19 train classes, in train-id order (cityscapesscripts' table).
pub const CITYSCAPES_TRAIN_IDS: [u8; 19] = [
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
];

/// A label map: one byte per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u8>,
}

impl SegDataset {
    /// Lists split `split` (`train`, `val`, `aug`, … for VOC; `train`/`val` for Cityscapes;
    /// `training`/`validation` or `train`/`val` for ADE20K) of the dataset at `root`.
    pub fn open(root: &Path, layout: SegFormat, split: &str, classes: usize) -> Result<SegDataset> {
        let pairs = match &layout {
            SegFormat::Voc { label_dir } => voc_pairs(root, label_dir, split)?,
            SegFormat::Cityscapes { raw_label_ids } => {
                cityscapes_pairs(root, split, *raw_label_ids)?
            }
            SegFormat::Ade20k => ade_pairs(root, split)?,
        };
        if pairs.is_empty() {
            bail!("{}: split {split:?} lists no image", root.display());
        }
        for p in &pairs {
            if !p.image.is_file() {
                bail!("{}: image missing", p.image.display());
            }
            if !p.label.is_file() {
                bail!(
                    "{}: label map missing (for {})",
                    p.label.display(),
                    p.image.display()
                );
            }
        }
        Ok(SegDataset {
            root: root.to_path_buf(),
            layout,
            classes,
            pairs,
        })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The label map of pair `i`, mapped to classes and checked: every value is a class or 255.
    pub fn label(&self, i: usize) -> Result<LabelMap> {
        let path = &self.pairs[i].label;
        let mut map = read_png_values(path)?;
        match self.layout {
            SegFormat::Voc { .. } => {}
            SegFormat::Cityscapes { raw_label_ids } => {
                if raw_label_ids {
                    let mut table = [IGNORE; 256];
                    for (train, &id) in CITYSCAPES_TRAIN_IDS.iter().enumerate() {
                        table[id as usize] = train as u8;
                    }
                    map.labels.iter_mut().for_each(|v| *v = table[*v as usize]);
                }
            }
            SegFormat::Ade20k => map.labels.iter_mut().for_each(|v| {
                *v = match *v {
                    0 | IGNORE => IGNORE,
                    x => x - 1,
                }
            }),
        }
        if let Some(bad) = map
            .labels
            .iter()
            .find(|&&v| v != IGNORE && v as usize >= self.classes)
        {
            bail!(
                "{}: label value {bad} is neither one of the {} classes nor {IGNORE} (ignore)",
                path.display(),
                self.classes
            );
        }
        Ok(map)
    }
}

fn voc_pairs(root: &Path, label_dir: &str, split: &str) -> Result<Vec<SegPair>> {
    let list = root
        .join("ImageSets/Segmentation")
        .join(format!("{split}.txt"));
    let text =
        std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|stem| SegPair {
            image: root.join("JPEGImages").join(format!("{stem}.jpg")),
            label: root.join(label_dir).join(format!("{stem}.png")),
        })
        .collect())
}

/// Files under `dir` (recursively) whose names end with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn cityscapes_pairs(root: &Path, split: &str, raw: bool) -> Result<Vec<SegPair>> {
    let images = files_ending(&root.join("leftImg8bit").join(split), "_leftImg8bit.png")?;
    let suffix = if raw {
        "_gtFine_labelIds.png"
    } else {
        "_gtFine_labelTrainIds.png"
    };
    Ok(images
        .into_iter()
        .map(|image| {
            let rel = image
                .strip_prefix(root.join("leftImg8bit"))
                .expect("listed under leftImg8bit")
                .to_string_lossy()
                .replace("_leftImg8bit.png", suffix);
            SegPair {
                label: root.join("gtFine").join(rel),
                image,
            }
        })
        .collect())
}

fn ade_pairs(root: &Path, split: &str) -> Result<Vec<SegPair>> {
    let split = match split {
        "train" => "training",
        "val" => "validation",
        s => s,
    };
    let base = if root.join("ADEChallengeData2016").is_dir() {
        root.join("ADEChallengeData2016")
    } else {
        root.to_path_buf()
    };
    let images = files_ending(&base.join("images").join(split), ".jpg")?;
    Ok(images
        .into_iter()
        .map(|image| {
            let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
            SegPair {
                label: base
                    .join("annotations")
                    .join(split)
                    .join(format!("{stem}.png")),
                image,
            }
        })
        .collect())
}

/// The stored values of an 8-bit (or packed 1/2/4-bit) grey or palette PNG, palette indices as
/// they are.
pub fn read_png_values(path: &Path) -> Result<LabelMap> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    decode_png_values(BufReader::new(f)).with_context(|| format!("{}", path.display()))
}

fn decode_png_values<R: Read + std::io::BufRead + std::io::Seek>(r: R) -> Result<LabelMap> {
    let mut decoder = png::Decoder::new(r);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().context("not a readable PNG")?;
    let mut buf = vec![0u8; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buf).context("decoding the PNG")?;
    let (w, h) = (info.width as usize, info.height as usize);
    if !matches!(
        info.color_type,
        png::ColorType::Grayscale | png::ColorType::Indexed
    ) {
        bail!(
            "label maps must be single-channel (grey or palette) PNGs, this one is {:?}",
            info.color_type
        );
    }
    let bits = match info.bit_depth {
        png::BitDepth::One => 1,
        png::BitDepth::Two => 2,
        png::BitDepth::Four => 4,
        png::BitDepth::Eight => 8,
        png::BitDepth::Sixteen => bail!("16-bit label maps are not supported"),
    };
    let mut labels = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * info.line_size..(y + 1) * info.line_size];
        if bits == 8 {
            labels.extend_from_slice(&row[..w]);
        } else {
            let per = 8 / bits;
            let mask = (1u8 << bits) - 1;
            labels.extend((0..w).map(|x| {
                let byte = row[x / per];
                (byte >> (8 - bits * (x % per + 1))) & mask
            }));
        }
    }
    Ok(LabelMap {
        width: w,
        height: h,
        labels,
    })
}

/// Width and height of the image at `path`, from its header.
pub fn image_size(path: &Path) -> Result<(usize, usize)> {
    let (w, h) = ::image::image_dimensions(path)
        .with_context(|| format!("{}: reading the image header", path.display()))?;
    Ok((w as usize, h as usize))
}

/// Checks that pair `i`'s label map has its image's size; returns the label map.
pub fn checked_label(ds: &SegDataset, i: usize) -> Result<LabelMap> {
    let map = ds.label(i)?;
    let (w, h) = image_size(&ds.pairs[i].image)?;
    if (w, h) != (map.width, map.height) {
        bail!(
            "{}: label map is {}×{}, its image {} is {w}×{h}",
            ds.pairs[i].label.display(),
            map.width,
            map.height,
            ds.pairs[i].image.display()
        );
    }
    Ok(map)
}
