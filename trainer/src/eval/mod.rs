//! Downstream segmentation evaluation: the confusion matrix and its scores (mmseg's `IoUMetric`),
//! and the validation pass (fine-tuning itself is `methods::segmentation`, run by the loop).

pub mod confusion;
pub mod proto_pictures;
pub mod validate;

/// Whether the run config at `path` is a validation pass (Segmentation in phase Validate).
pub fn is_validation(path: &std::path::Path) -> anyhow::Result<bool> {
    let run = config::RunConfig::from_file(path)?;
    Ok(matches!(
        &run.method,
        config::MethodConfig::Segmentation(s) if matches!(s.phase, config::SegPhase::Validate { .. })
    ))
}
