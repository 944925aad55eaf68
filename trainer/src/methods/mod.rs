//! One module per method: only what is particular to it (its modules, momentum twin, queues and
//! how its loss is formed from a batch). The common part is [`crate::method`] and `train`.

pub mod cp2;
pub mod densecl;
pub mod edmoco;
pub mod mocov2;
pub mod plmoco;
pub mod plr;
pub mod segmentation;
pub mod soco;

use anyhow::Result;
use config::MethodConfig;

pub use crate::method::{LossTerms, Method};

/// Something to do with the method type a config names (Rust has no generic closures: this is
/// the visitor that stands in for one).
pub trait WithMethod {
    type Output;
    fn call<M: Method>(self) -> Self::Output;
}

/// The registry: runs `f` with the method type of `cfg`. One line per method.
pub fn with_method<F: WithMethod>(cfg: &MethodConfig, f: F) -> Result<F::Output> {
    Ok(match cfg {
        MethodConfig::MocoV2(_) => f.call::<mocov2::MocoV2>(),
        MethodConfig::DenseCl(_) => f.call::<densecl::DenseCl>(),
        MethodConfig::Soco(_) => f.call::<soco::Soco>(),
        MethodConfig::Cp2(_) => f.call::<cp2::Cp2>(),
        MethodConfig::PatchRotation(_) => f.call::<plr::PatchRotation>(),
        MethodConfig::EdMoco(_) => f.call::<edmoco::EdMoco>(),
        MethodConfig::PatchMoco(_) => f.call::<plmoco::PatchMoco>(),
        MethodConfig::Segmentation(_) => f.call::<segmentation::Segmentation>(),
    })
}

/// The config of method `$variant` in `run`, or an error naming both (for `Method::new`).
#[macro_export]
macro_rules! method_config {
    ($run:expr, $variant:ident) => {
        match &$run.method {
            config::MethodConfig::$variant(c) => c,
            other => anyhow::bail!(
                "{} was asked to train a {} config",
                stringify!($variant),
                other.name()
            ),
        }
    };
}
