//! From ring slots to device tensors: one host→device transfer per tensor as u8, then u8 → float,
//! HWC → CHW and ImageNet normalisation on the device (METHODS.md §0).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use burn::tensor::{DType, Device, Int, Tensor, TensorCreationOptions, TensorData};
use config::RunConfig;
use proto_shm::{BatchMeta, Consumer, Schema, ShmOptions};

/// ImageNet mean and std on [0, 1] RGB.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

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

/// One batch as a method sees it, every tensor by its schema name (`proto_shm::schemas::names`):
/// image tensors on the device (normalised, `[n, 3, h, w]`), every other tensor as host bytes
/// (box lists, ids and masks are small and mostly steer host-side bookkeeping).
pub struct StepBatch {
    pub images: BTreeMap<String, Tensor<4>>,
    pub host: BTreeMap<String, Vec<u8>>,
    pub meta: BatchMeta,
}

impl StepBatch {
    /// A batch from named device images and named host tensors (benchmarks and tests).
    pub fn new(
        images: impl IntoIterator<Item = (&'static str, Tensor<4>)>,
        host: impl IntoIterator<Item = (&'static str, Vec<u8>)>,
    ) -> StepBatch {
        StepBatch {
            images: images
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            host: host.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            meta: BatchMeta {
                epoch: 0,
                index_in_epoch: 0,
            },
        }
    }

    /// Image tensor `name` (present by construction: the schema was checked on attach).
    pub fn image(&self, name: &str) -> Tensor<4> {
        match self.images.get(name) {
            Some(t) => t.clone(),
            None => panic!("the batch has no image tensor {name:?}"),
        }
    }

    /// Host tensor `name` (present by construction: the schema was checked on attach).
    pub fn bytes(&self, name: &str) -> &[u8] {
        match self.host.get(name) {
            Some(b) => b,
            None => panic!("the batch has no host tensor {name:?}"),
        }
    }

    pub fn f32s(&self, name: &str) -> Vec<f32> {
        self.bytes(name)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub fn i32s(&self, name: &str) -> Vec<i32> {
        self.bytes(name)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// A u8 0/1 mask tensor as float `[n, rest]` on `device`.
    pub fn mask(&self, name: &str, n: usize, device: &Device) -> Tensor<2> {
        let b = self.bytes(name);
        let v: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(v, [n, b.len() / n]), device)
    }
}

/// The trainer's end of the ring.
pub struct RingBatches {
    consumer: Consumer,
    device: Device,
    batch: usize,
    schema: Schema,
    /// Time spent blocked waiting for the loader.
    pub waited: Duration,
}

impl RingBatches {
    /// Attaches to ring `name`, checking that it carries `schema` (what the trainer's own config
    /// implies: `Method::schema`).
    pub fn open(
        name: &str,
        schema: Schema,
        run: &RunConfig,
        device: &Device,
        opts: &ShmOptions,
    ) -> Result<RingBatches> {
        let consumer =
            Consumer::open(name, &schema, opts).context("attaching to the loader's ring")?;
        Ok(RingBatches {
            consumer,
            device: device.clone(),
            batch: run.loader.batch_size,
            schema,
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
    pub fn next_batch(&mut self) -> Result<Option<StepBatch>> {
        let t = Instant::now();
        let batch = self.consumer.next_batch()?;
        self.waited += t.elapsed();
        let Some(batch) = batch else { return Ok(None) };
        let n = self.batch;
        let mut images = BTreeMap::new();
        let mut host = BTreeMap::new();
        for (i, spec) in self.schema.tensors.iter().enumerate() {
            match (spec.dtype, spec.shape.as_slice()) {
                (proto_shm::DType::U8, &[h, w, 3]) => {
                    let t = images_to_device(batch.tensor(i), n, h, w, &self.device);
                    images.insert(spec.name.clone(), t);
                }
                _ => {
                    host.insert(spec.name.clone(), batch.tensor(i).to_vec());
                }
            }
        }
        Ok(Some(StepBatch {
            images,
            host,
            meta: batch.meta(),
        }))
    }
}
