//! Downstream segmentation evaluation: the confusion matrix and its scores (mmseg's `IoUMetric`).

pub mod confusion;
