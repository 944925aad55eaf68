//! Device selection. burn 0.22 dispatches on the device at run time, so one build carries every
//! compiled-in backend: flex (pure-Rust CPU) always, libtorch with the `tch` feature, CUDA
//! (CubeCL) with the `cuda` feature.

use burn::tensor::Device;

/// The autodiff-enabled device for `backend`.
pub fn device(backend: config::Backend) -> anyhow::Result<Device> {
    Ok(plain_device(backend)?.autodiff())
}

/// The device for `backend` without autodiff (inference, tests of forward passes).
pub fn plain_device(backend: config::Backend) -> anyhow::Result<Device> {
    match resolve(backend) {
        // Explicit: Device::default() prefers libtorch over flex when both are compiled in.
        config::Backend::Flex => Ok(Device::from(burn::backend::FlexDevice)),
        // burn marks burn-tch deprecated (removed in 0.23); on CPU it is still the fastest backend
        // here (BENCHMARKS.md), so it stays an option until flex or CubeCL catch up.
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        config::Backend::Tch => Ok(Device::from(burn::backend::LibTorchDevice::Cpu)),
        config::Backend::Auto => unreachable!("resolved above"),
        other => anyhow::bail!(
            "backend {other:?} is not compiled into this build (cargo feature {:?}; see README)",
            format!("{other:?}").to_lowercase()
        ),
    }
}

/// The (non-autodiff) device the test suite runs on. `TRAINER_TEST_BACKEND` = `flex` or `tch`
/// picks one of the compiled-in backends; unset (or `auto`) means `Auto`. scripts/test.sh runs the
/// trainer's test binaries once per CPU backend this way, from one build.
#[doc(hidden)]
pub fn test_device() -> Device {
    let backend = match std::env::var("TRAINER_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("auto") => config::Backend::Auto,
        Ok("flex") => config::Backend::Flex,
        Ok("tch") => config::Backend::Tch,
        Ok(other) => panic!("TRAINER_TEST_BACKEND={other:?}: expected flex, tch or auto"),
    };
    plain_device(backend).unwrap_or_else(|e| panic!("TRAINER_TEST_BACKEND: {e}"))
}

/// The backend `Auto` stands for in this build: libtorch when compiled in (about 2–3× faster than
/// flex on CPU, BENCHMARKS.md), flex otherwise. Other choices are returned as they are.
pub fn resolve(backend: config::Backend) -> config::Backend {
    match backend {
        config::Backend::Auto if cfg!(feature = "tch") => config::Backend::Tch,
        config::Backend::Auto => config::Backend::Flex,
        other => other,
    }
}

/// Sizes the CPU thread pool of `backend` (resolved) to `threads`; `None` leaves each backend's
/// default (one thread per core). Call before the first tensor operation: rayon's global pool
/// can be built only once.
pub fn set_threads(backend: config::Backend, threads: Option<usize>) -> anyhow::Result<()> {
    let Some(n) = threads else { return Ok(()) };
    match resolve(backend) {
        config::Backend::Flex => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("setting {n} flex (rayon) threads: {e}")),
        #[cfg(feature = "tch")]
        config::Backend::Tch => {
            tch::utils::set_num_threads(n as i32);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A float tensor's values on the host, row-major (for work that runs outside the graph).
pub fn host_f32<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("a float tensor converts to f32")
}
