//! Device selection. burn 0.22 dispatches on the device at run time, so one build carries every
//! compiled-in backend: flex (pure-Rust CPU) always, libtorch with the `tch` feature, CUDA
//! (CubeCL) with the `cuda` feature.

use burn::tensor::Device;

/// The autodiff-enabled device for `backend`.
pub fn device(backend: config::Backend) -> anyhow::Result<Device> {
    match backend {
        // Explicit: Device::default() prefers libtorch over flex when both are compiled in.
        config::Backend::Flex => Ok(Device::from(burn::backend::FlexDevice).autodiff()),
        // burn marks burn-tch deprecated (removed in 0.23); on CPU it is still the fastest backend
        // here (BENCHMARKS.md), so it stays an option until flex or CubeCL catch up.
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        config::Backend::Tch => Ok(Device::from(burn::backend::LibTorchDevice::Cpu).autodiff()),
        other => anyhow::bail!(
            "backend {other:?} is not compiled into this build (cargo feature {:?}; see README)",
            format!("{other:?}").to_lowercase()
        ),
    }
}
