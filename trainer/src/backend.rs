//! Device selection. burn 0.22 dispatches on the device at run time, so one build carries every
//! compiled-in backend: flex (pure-Rust CPU) always, CUDA (CubeCL) with the `cuda` feature.

use burn::tensor::Device;

/// The autodiff-enabled device for `backend`.
pub fn device(backend: config::Backend) -> anyhow::Result<Device> {
    match backend {
        config::Backend::Flex => Ok(Device::default().autodiff()),
        other => anyhow::bail!("backend {other:?} is not compiled into this build"),
    }
}
