//! From ring slots to device tensors: one host→device transfer per tensor as u8, then u8 → float,
//! HWC → CHW and ImageNet normalisation on the device (METHODS.md §0).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use burn::tensor::{DType, Device, Int, Tensor, TensorCreationOptions, TensorData};
use config::{MethodConfig, RunConfig};
use proto_shm::{BatchMeta, Consumer, Schema, ShmOptions};

/// ImageNet mean and std on [0, 1] RGB.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The ring schema the trainer expects for a run, built from its own config.
pub fn expected_schema(run: &RunConfig) -> Result<Schema> {
    let b = run.loader.batch_size;
    Ok(match &run.method {
        MethodConfig::MocoV2(m) => proto_shm::schemas::two_crop("mocov2", b, m.view.size),
        MethodConfig::DenseCl(d) => proto_shm::schemas::two_crop("densecl", b, d.moco.view.size),
        other => anyhow::bail!("the trainer does not train {} yet", other.name()),
    })
}

/// u8 HWC images `[n, h, w, 3]` → normalised float `[n, 3, h, w]` on `device`.
pub fn images_to_device(bytes: &[u8], n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    let data = TensorData::new(bytes.to_vec(), [n, h, w, 3]);
    let opts = TensorCreationOptions::new(device.clone()).with_dtype(DType::U8);
    let x = Tensor::<4, Int>::from_data(data, opts)
        .float()
        .permute([0, 3, 1, 2])
        .div_scalar(255.0);
    let mean = Tensor::<1>::from_floats(MEAN, device).reshape([1, 3, 1, 1]);
    let std = Tensor::<1>::from_floats(STD, device).reshape([1, 3, 1, 1]);
    (x - mean) / std
}

/// Two augmented views of each image (MoCo v2, DenseCL).
pub struct TwoViewBatch {
    pub view0: Tensor<4>,
    pub view1: Tensor<4>,
    pub meta: BatchMeta,
}

/// The trainer's end of the ring.
pub struct RingBatches {
    consumer: Consumer,
    device: Device,
    batch: usize,
    size: usize,
    /// Time spent blocked waiting for the loader.
    pub waited: Duration,
}

impl RingBatches {
    pub fn open(
        name: &str,
        run: &RunConfig,
        device: &Device,
        opts: &ShmOptions,
    ) -> Result<RingBatches> {
        let schema = expected_schema(run)?;
        let size = schema.tensors[0].shape[0];
        let consumer =
            Consumer::open(name, &schema, opts).context("attaching to the loader's ring")?;
        Ok(RingBatches {
            consumer,
            device: device.clone(),
            batch: run.loader.batch_size,
            size,
            waited: Duration::ZERO,
        })
    }

    pub fn producer_pid(&self) -> u32 {
        self.consumer.producer_pid()
    }

    /// (batches per epoch, total batches) announced by the loader.
    pub fn stream_info(&self) -> (u64, u64) {
        self.consumer.stream_info()
    }

    /// The next batch on the device, or None at the end of the stream.
    pub fn next_two_view(&mut self) -> Result<Option<TwoViewBatch>> {
        let t = Instant::now();
        let batch = self.consumer.next_batch()?;
        self.waited += t.elapsed();
        let Some(batch) = batch else { return Ok(None) };
        let (n, s) = (self.batch, self.size);
        let view0 = images_to_device(batch.tensor(0), n, s, s, &self.device);
        let view1 = images_to_device(batch.tensor(1), n, s, s, &self.device);
        Ok(Some(TwoViewBatch {
            view0,
            view1,
            meta: batch.meta(),
        }))
    }
}
