//! Network building blocks, one per file (burn's layout: a `XConfig` with documented defaults and
//! `init(&device)`, a module whose `forward` documents its shapes).

pub mod aspp;
pub mod contrast_proj;
pub mod decoder;
pub mod fpn;
pub mod heads;
pub mod mocofcn;
pub mod proto_head;
pub mod psp;
pub mod resnet;
pub mod roi_align;
pub mod roi_head;
pub mod seg_heads;
