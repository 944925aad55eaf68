//! What one batch holds and where each of its tensors lives inside a slot.
//!
//! A tensor is stored batch-major (`[batch, ..per-sample shape]`) and contiguous so that the trainer
//! can move it to the device in one transfer; every tensor starts on a 64-byte boundary and every
//! slot on a page boundary. The schema travels in the segment header as canonical text: the consumer
//! compares it byte for byte with its own before reading any data, and shows both on a mismatch.

use std::fmt;

/// Alignment of each tensor inside a slot (a cache line; enough for SIMD loads and DMA).
pub const TENSOR_ALIGN: usize = 64;
/// Alignment of each slot (a page, so slots never share a page).
pub const SLOT_ALIGN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    U8,
    U16,
    I16,
    I32,
    I64,
    F32,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F32 => "f32",
        }
    }
}

/// One named tensor of a batch; `shape` is per sample (the batch dimension is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: DType, shape: &[usize]) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    pub fn sample_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_bytes()
    }
}

/// Everything both sides must agree on before exchanging a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The pretraining method whose views the batch carries (e.g. `mocov2`).
    pub method: String,
    pub batch_size: usize,
    pub tensors: Vec<TensorSpec>,
    /// Method parameters that shape the data but are not tensor shapes (e.g. `max_boxes=4`).
    pub attrs: Vec<(String, String)>,
}

impl Schema {
    pub fn new(method: impl Into<String>, batch_size: usize) -> Self {
        Schema {
            method: method.into(),
            batch_size,
            tensors: Vec::new(),
            attrs: Vec::new(),
        }
    }

    pub fn tensor(mut self, name: impl Into<String>, dtype: DType, shape: &[usize]) -> Self {
        self.tensors.push(TensorSpec::new(name, dtype, shape));
        self
    }

    pub fn attr(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.attrs.push((key.into(), value.to_string()));
        self
    }

    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// Checks what can be wrong with a schema before it shapes a segment.
    pub fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("batch size is 0".into());
        }
        if self.tensors.is_empty() {
            return Err("schema has no tensors".into());
        }
        let is_token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        };
        if !is_token(&self.method) {
            return Err(format!(
                "method name {:?} must be a plain token",
                self.method
            ));
        }
        for (i, t) in self.tensors.iter().enumerate() {
            if !is_token(&t.name) {
                return Err(format!("tensor name {:?} must be a plain token", t.name));
            }
            if self.tensors[..i].iter().any(|u| u.name == t.name) {
                return Err(format!("tensor name {:?} appears twice", t.name));
            }
            if t.sample_bytes() == 0 {
                return Err(format!(
                    "tensor {:?} has an empty shape {:?}",
                    t.name, t.shape
                ));
            }
        }
        for (k, v) in &self.attrs {
            if !is_token(k) || v.contains('\n') {
                return Err(format!(
                    "attribute {k:?}={v:?} must be a token and a one-line value"
                ));
            }
        }
        Ok(())
    }

    /// Canonical text stored in the segment header; equal schemas give equal text.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "method {}", self.method)?;
        writeln!(f, "batch {}", self.batch_size)?;
        for (k, v) in &self.attrs {
            writeln!(f, "attr {k}={v}")?;
        }
        for t in &self.tensors {
            let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            writeln!(
                f,
                "tensor {} {} [{}]",
                t.name,
                t.dtype.name(),
                dims.join(",")
            )?;
        }
        Ok(())
    }
}

/// Byte placement of one tensor inside a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorPlacement {
    pub offset_in_slot: usize,
    pub sample_bytes: usize,
    pub total_bytes: usize,
}

/// Where every tensor of a batch sits inside a slot, computed once from the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub schema: Schema,
    pub tensors: Vec<TensorPlacement>,
    /// Bytes from one slot's start to the next (page aligned).
    pub slot_stride: usize,
}

pub(crate) fn align_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl Layout {
    pub fn new(schema: &Schema) -> Layout {
        let mut offset = 0usize;
        let mut tensors = Vec::with_capacity(schema.tensors.len());
        for t in &schema.tensors {
            offset = align_up(offset, TENSOR_ALIGN);
            let sample_bytes = t.sample_bytes();
            let total_bytes = sample_bytes * schema.batch_size;
            tensors.push(TensorPlacement {
                offset_in_slot: offset,
                sample_bytes,
                total_bytes,
            });
            offset += total_bytes;
        }
        Layout {
            schema: schema.clone(),
            tensors,
            slot_stride: align_up(offset.max(1), SLOT_ALIGN),
        }
    }

    /// Bytes of payload in one batch (without alignment padding).
    pub fn batch_payload_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.total_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_aligns_tensors_and_slots() {
        let s = Schema::new("mocov2", 3)
            .tensor("view0", DType::U8, &[5, 7, 3])
            .tensor("boxes", DType::F32, &[4, 4]);
        let l = Layout::new(&s);
        assert_eq!(l.tensors[0].offset_in_slot, 0);
        assert_eq!(l.tensors[0].total_bytes, 3 * 105);
        // 315 rounds up to the next multiple of 64.
        assert_eq!(l.tensors[1].offset_in_slot, 320);
        assert_eq!(l.tensors[1].sample_bytes, 64);
        assert_eq!(l.slot_stride, 4096);
    }

    #[test]
    fn text_is_canonical_and_readable() {
        let s = Schema::new("soco", 2)
            .attr("max_boxes", 4)
            .tensor("v1", DType::U8, &[224, 224, 3]);
        assert_eq!(
            s.to_text(),
            "method soco\nbatch 2\nattr max_boxes=4\ntensor v1 u8 [224,224,3]\n"
        );
    }

    #[test]
    fn check_rejects_bad_schemas() {
        assert!(Schema::new("m", 0)
            .tensor("a", DType::U8, &[1])
            .check()
            .is_err());
        assert!(Schema::new("m", 1).check().is_err());
        assert!(Schema::new("m", 1)
            .tensor("a", DType::U8, &[1])
            .tensor("a", DType::U8, &[1])
            .check()
            .is_err());
        assert!(Schema::new("m", 1)
            .tensor("a b", DType::U8, &[1])
            .check()
            .is_err());
        assert!(Schema::new("m", 1)
            .tensor("a", DType::U8, &[0])
            .check()
            .is_err());
        assert!(Schema::new("m", 1)
            .tensor("a", DType::U8, &[2])
            .check()
            .is_ok());
    }
}
