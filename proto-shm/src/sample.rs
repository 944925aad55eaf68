//! One sample's tensors by schema name: what a view builder writes into. The ring hands out a
//! sample's disjoint byte ranges ([`crate::SampleWriter::named`]); tests and previews use owned
//! buffers of the same shape ([`SampleBuffers`]).

use crate::Schema;

/// Mutable byte ranges of one sample, each taken once by its schema name.
pub struct SampleTensors<'a> {
    schema: &'a Schema,
    bufs: Vec<Option<&'a mut [u8]>>,
}

impl<'a> SampleTensors<'a> {
    /// `bufs` are the sample's tensors in `schema` order.
    pub fn new(schema: &'a Schema, bufs: Vec<&'a mut [u8]>) -> SampleTensors<'a> {
        assert_eq!(schema.tensors.len(), bufs.len(), "one buffer per tensor");
        SampleTensors {
            schema,
            bufs: bufs.into_iter().map(Some).collect(),
        }
    }

    /// The bytes of tensor `name`. Each tensor is taken once, so several can be held at a time.
    /// Panics on a name the schema lacks or a second take: both are bugs of the view builder
    /// (the schema it declared and the tensors it writes disagree).
    pub fn take(&mut self, name: &str) -> &'a mut [u8] {
        let i = self
            .schema
            .tensor_index(name)
            .unwrap_or_else(|| panic!("the schema has no tensor {name:?}"));
        self.bufs[i]
            .take()
            .unwrap_or_else(|| panic!("tensor {name:?} taken twice"))
    }
}

/// Owned buffers for one sample of a schema, readable by name after a view builder filled them.
pub struct SampleBuffers {
    schema: Schema,
    bufs: Vec<Vec<u8>>,
}

impl SampleBuffers {
    pub fn new(schema: &Schema) -> SampleBuffers {
        SampleBuffers {
            schema: schema.clone(),
            bufs: schema
                .tensors
                .iter()
                .map(|t| vec![0u8; t.sample_bytes()])
                .collect(),
        }
    }

    /// Every tensor, for a view builder to fill.
    pub fn tensors(&mut self) -> SampleTensors<'_> {
        let bufs = self.bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        SampleTensors::new(&self.schema, bufs)
    }

    /// Tensor `name` (panics on a name the schema lacks).
    pub fn get(&self, name: &str) -> &[u8] {
        let i = self
            .schema
            .tensor_index(name)
            .unwrap_or_else(|| panic!("the schema has no tensor {name:?}"));
        &self.bufs[i]
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// All buffers in schema order.
    pub fn into_vecs(self) -> Vec<Vec<u8>> {
        self.bufs
    }
}
