//! Datasets on disk: torchvision's ImageFolder layout, a file list, or a flat folder. Listings are
//! sorted (so indices mean the same thing on every machine) and cached: a second open of a
//! 1.28 M-image folder reads one compressed file and stats the directories instead of listing them.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use config::{DatasetConfig, DatasetLayout};

/// File extensions torchvision's ImageFolder accepts (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

pub fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the dataset root.
    pub path: PathBuf,
    /// Class index, or −1 when the layout has no labels.
    pub label: i64,
}

#[derive(Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
    /// Class names by index (ImageFolder), empty otherwise.
    pub classes: Vec<String>,
    /// Class folders that hold no image (kept in `classes` so indices match torchvision's).
    pub empty_classes: Vec<String>,
    /// Whether the listing came from the cache.
    pub from_cache: bool,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn path_of(&self, index: usize) -> PathBuf {
        self.root.join(&self.entries[index].path)
    }

    /// Lists the dataset described by `cfg`, using (and refreshing) the index cache.
    pub fn open(cfg: &DatasetConfig) -> Result<Dataset> {
        let root = cfg.root.clone();
        if !root.is_dir() {
            bail!(
                "dataset root {} does not exist or is not a directory",
                root.display()
            );
        }
        let mut ds = match &cfg.layout {
            DatasetLayout::FileList { list } => read_file_list(&root, list)?,
            DatasetLayout::Segmentation { format, split } => {
                segmentation_images(&root, format, split)?
            }
            layout => {
                let cache = cache_path(&root, layout);
                match cache.as_deref().map(read_cache) {
                    Some(Ok(Some(ds))) => ds,
                    _ => {
                        let (ds, dirs) = match layout {
                            DatasetLayout::ImageFolder { split } => {
                                walk_image_folder(&root, split)?
                            }
                            _ => walk_flat(&root)?,
                        };
                        if let Some(cache) = &cache {
                            if let Err(e) = write_cache(cache, &ds, &dirs) {
                                tracing::debug!(
                                    "could not write index cache {}: {e:#}",
                                    cache.display()
                                );
                            }
                        }
                        ds
                    }
                }
            }
        };
        if let Some(n) = cfg.max_images {
            ds.entries.truncate(n);
        }
        if ds.entries.is_empty() {
            bail!(
                "no images found under {} (layout {:?})",
                root.display(),
                cfg.layout
            );
        }
        for c in &ds.empty_classes {
            tracing::warn!(class = %c, "class folder holds no image");
        }
        Ok(ds)
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// Image files directly in `dir`, sorted by name. Uses the directory entry's type (no stat per file).
fn list_images(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let ft = e.file_type()?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = ft.is_file() || (ft.is_symlink() && e.path().is_file());
        if is_file && is_image_name(&name) {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

type DirStamps = Vec<(PathBuf, i128)>;

fn walk_image_folder(root: &Path, split: &str) -> Result<(Dataset, DirStamps)> {
    let base = root.join(split);
    if !base.is_dir() {
        bail!("ImageFolder split folder {} does not exist", base.display());
    }
    let mut dirs = vec![(base.clone(), mtime_ns(&base.metadata()?))];
    let mut classes: Vec<String> = std::fs::read_dir(&base)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort_unstable();
    let mut entries = Vec::new();
    let mut empty = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = base.join(class);
        dirs.push((dir.clone(), mtime_ns(&dir.metadata()?)));
        let names = list_images(&dir)?;
        if names.is_empty() {
            empty.push(class.clone());
        }
        entries.extend(names.into_iter().map(|n| Entry {
            path: Path::new(split).join(class).join(n),
            label: label as i64,
        }));
    }
    Ok((
        Dataset {
            root: root.to_path_buf(),
            entries,
            classes,
            empty_classes: empty,
            from_cache: false,
        },
        dirs,
    ))
}

fn walk_flat(root: &Path) -> Result<(Dataset, DirStamps)> {
    let mut entries = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        dirs.push((dir.clone(), mtime_ns(&dir.metadata()?)));
        let mut subdirs = BTreeSet::new();
        for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                subdirs.insert(rel.join(&name));
            } else if (ft.is_file() || (ft.is_symlink() && e.path().is_file()))
                && is_image_name(&name)
            {
                entries.push(Entry {
                    path: rel.join(&name),
                    label: -1,
                });
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok((
        Dataset {
            root: root.to_path_buf(),
            entries,
            classes: Vec::new(),
            empty_classes: Vec::new(),
            from_cache: false,
        },
        dirs,
    ))
}

/// The images of a segmentation split, in the order of `SegDataset::open` (so index i is pair i).
fn segmentation_images(root: &Path, format: &config::SegFormat, split: &str) -> Result<Dataset> {
    let seg = crate::segsource::SegDataset::open(root, format.clone(), split, 255)?;
    let entries = seg
        .pairs
        .iter()
        .map(|p| Entry {
            path: p.image.strip_prefix(root).unwrap_or(&p.image).to_path_buf(),
            label: -1,
        })
        .collect();
    Ok(Dataset {
        root: root.to_path_buf(),
        entries,
        classes: Vec::new(),
        empty_classes: Vec::new(),
        from_cache: false,
    })
}

fn read_file_list(root: &Path, list: &Path) -> Result<Dataset> {
    let list_path = if list.is_absolute() {
        list.to_path_buf()
    } else {
        root.join(list)
    };
    let f = std::fs::File::open(&list_path)
        .with_context(|| format!("file list {}", list_path.display()))?;
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", list_path.display(), n + 1))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let path = PathBuf::from(parts.next().unwrap());
        let label = match parts.next() {
            Some(l) => l.parse::<i64>().with_context(|| {
                format!(
                    "{}:{}: label {l:?} is not an integer",
                    list_path.display(),
                    n + 1
                )
            })?,
            None => -1,
        };
        entries.push(Entry { path, label });
    }
    Ok(Dataset {
        root: root.to_path_buf(),
        entries,
        classes: Vec::new(),
        empty_classes: Vec::new(),
        from_cache: false,
    })
}

/// `$DENSEPRE_CACHE_DIR`, else `$XDG_CACHE_HOME/densepre`, else `~/.cache/densepre`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DENSEPRE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("densepre"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/densepre"))
}

fn cache_path(root: &Path, layout: &DatasetLayout) -> Option<PathBuf> {
    let canon = root.canonicalize().ok()?;
    // FNV-1a of the canonical root and layout: a stable file name per dataset.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}|{layout:?}", canon.display()).bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    Some(cache_dir()?.join(format!("index-{h:016x}.zst")))
}

const CACHE_VERSION: &str = "densepre-index v1";

/// The cached listing, if every directory it was made from is unchanged (a directory's mtime moves
/// whenever an entry is added, removed or renamed in it).
fn read_cache(path: &Path) -> Result<Option<Dataset>> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let text = zstd::decode_all(file)?;
    let text = String::from_utf8(text)?;
    let mut lines = text.lines();
    if lines.next() != Some(CACHE_VERSION) {
        return Ok(None);
    }
    let root = PathBuf::from(
        lines
            .next()
            .context("cache: root")?
            .strip_prefix("R ")
            .context("cache: root")?,
    );
    let mut ds = Dataset {
        root,
        entries: Vec::new(),
        classes: Vec::new(),
        empty_classes: Vec::new(),
        from_cache: true,
    };
    for line in lines {
        let (tag, rest) = line.split_at(2);
        match tag {
            "D " => {
                let (stamp, dir) = rest.split_once(' ').context("cache: dir line")?;
                let now = std::fs::metadata(dir).map(|m| mtime_ns(&m)).ok();
                if now != Some(stamp.parse::<i128>()?) {
                    return Ok(None);
                }
            }
            "C " => ds.classes.push(rest.to_string()),
            "E " => ds.empty_classes.push(rest.to_string()),
            "F " => {
                let (label, p) = rest.split_once(' ').context("cache: file line")?;
                ds.entries.push(Entry {
                    path: PathBuf::from(p),
                    label: label.parse()?,
                });
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(ds))
}

fn write_cache(path: &Path, ds: &Dataset, dirs: &DirStamps) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let mut text = String::with_capacity(ds.entries.len() * 40);
    use std::fmt::Write as _;
    writeln!(text, "{CACHE_VERSION}")?;
    writeln!(text, "R {}", ds.root.display())?;
    for (d, stamp) in dirs {
        writeln!(text, "D {stamp} {}", d.display())?;
    }
    for c in &ds.classes {
        writeln!(text, "C {c}")?;
    }
    for c in &ds.empty_classes {
        writeln!(text, "E {c}")?;
    }
    for e in &ds.entries {
        writeln!(text, "F {} {}", e.label, e.path.display())?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&zstd::encode_all(text.as_bytes(), 3)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
