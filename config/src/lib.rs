//! The typed schema of a run, read from RON.
//!
//! One file describes a whole run: the dataset, the loader, the method with its parameters, the
//! trainer and the downstream evaluation. Every default is the number of the method's official code
//! as recorded in the project's METHODS.md (section given beside each field); a preset only states
//! what differs. Unknown fields are errors, and every error names the file, line, column and field.

mod error;
mod eval;
mod method;
mod protoseg;
mod ssl4dp;
mod trainer;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::ConfigError;
pub use eval::*;
pub use method::*;
pub use protoseg::*;
pub use ssl4dp::*;
pub use trainer::*;

/// A complete run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Names the run's output folder and the shared-memory segment.
    pub name: String,
    /// Every random draw of the loader and trainer derives from this.
    #[serde(default)]
    pub seed: u64,
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub loader: LoaderConfig,
    pub method: MethodConfig,
    #[serde(default)]
    pub trainer: TrainerConfig,
    #[serde(default)]
    pub eval: Option<EvalConfig>,
}

/// Where the pretraining images are and how they are listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Dataset root. Relative paths are taken from the current directory.
    pub root: PathBuf,
    #[serde(default)]
    pub layout: DatasetLayout,
    /// Proposal store written by `tools/precompute-proposals` (SoCo). None: computed on the fly.
    #[serde(default)]
    pub proposals: Option<PathBuf>,
    /// Use only the first N images of the listing (after sorting), for quick runs.
    #[serde(default)]
    pub max_images: Option<usize>,
}

/// How images are found under the root (METHODS.md §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DatasetLayout {
    /// torchvision ImageFolder: `<root>/<split>/<class>/*.JPEG`, class from the folder name.
    ImageFolder { split: String },
    /// One relative path per line, optionally followed by whitespace and an integer label.
    FileList { list: PathBuf },
    /// Every image file directly under the root (or below it), no labels.
    #[default]
    Flat,
    /// The images of split `split` of a segmentation dataset (with their label maps; §6).
    Segmentation { format: SegFormat, split: String },
}

/// The loader daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// Decode/augment threads.
    pub workers: usize,
    /// Batches in flight in the shared-memory ring.
    pub ring_slots: usize,
    /// Samples per batch (per rank).
    pub batch_size: usize,
    /// Images with more pixels than this are skipped as decompression bombs (Pillow warns at
    /// 89,478,485 and refuses at twice that; we refuse at Pillow's warning level).
    pub max_decoded_pixels: u64,
    /// Shared-memory segment name; None: derived from the run name and the process id.
    pub shm_name: Option<String>,
    /// Directory of the segment (a tmpfs); None: `/dev/shm`.
    pub shm_dir: Option<PathBuf>,
    /// Data-parallel shard of this loader: rank and world size.
    pub rank: usize,
    pub world_size: usize,
    /// Seconds either side of the ring may wait on a live peer for the next batch (or for a slot
    /// back) before it logs that the peer is alive but making no progress.
    pub stall_warning_s: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            workers: 4,
            ring_slots: 4,
            batch_size: 256,
            max_decoded_pixels: 89_478_485,
            shm_name: None,
            shm_dir: None,
            rank: 0,
            world_size: 1,
            stall_warning_s: 60,
        }
    }
}

impl RunConfig {
    /// Parses RON text; `origin` names the source in error messages.
    pub fn from_str(text: &str, origin: &str) -> Result<RunConfig, ConfigError> {
        let options = ron::Options::default().with_default_extension(
            ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES
                | ron::extensions::Extensions::IMPLICIT_SOME,
        );
        let mut de = ron::Deserializer::from_str_with_options(text, &options)
            .map_err(|e| ConfigError::from_ron(origin, e, None))?;
        let run: RunConfig = match serde_path_to_error::deserialize(&mut de) {
            Ok(run) => run,
            Err(e) => {
                let field = e.path().to_string();
                let spanned = de.span_error(e.into_inner());
                return Err(ConfigError::from_ron(origin, spanned, Some(field)));
            }
        };
        de.end()
            .map_err(|e| ConfigError::from_ron(origin, de.span_error(e), None))?;
        run.validate()
            .map_err(|(field, msg)| ConfigError::invalid(origin, text, field, msg))?;
        Ok(run)
    }

    /// Validates this config again after command-line overrides were applied to it, so a flag
    /// gets the same checks as the file (`--workers 0` is refused like `workers: 0`). `origin`
    /// says where the values came from (e.g. "loader command line").
    pub fn check_overrides(&self, origin: &str) -> Result<(), ConfigError> {
        self.validate()
            .map_err(|(field, msg)| ConfigError::invalid(origin, "", field, msg))
    }

    /// Reads and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<RunConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            cause: e,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// The RON text of this config (what a run writes beside its outputs).
    pub fn to_ron(&self) -> String {
        let pretty = ron::ser::PrettyConfig::default().extensions(
            ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES
                | ron::extensions::Extensions::IMPLICIT_SOME,
        );
        ron::ser::to_string_pretty(self, pretty).expect("config serialises")
    }

    /// Where the run writes checkpoints, metrics and plots.
    pub fn output_dir(&self) -> PathBuf {
        self.trainer
            .output_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&self.name))
    }
}

/// The presets shipped in `config/presets/`, by file stem.
pub fn presets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets")
}
