//! Shared helpers of the command-line tools (each tool is a thin binary under src/bin).

pub mod demo_data;
pub mod soco_json;
