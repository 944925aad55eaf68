//! Shared helpers of the command-line tools (each tool is a thin binary under src/bin).

pub mod demo_data;
pub mod evaluate;
pub mod export_weights;
pub mod launch;
pub mod preview;
pub mod soco_json;
