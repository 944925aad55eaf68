//! Writing Python pickles: the few opcodes a `torch.save` state dict (tensors as
//! `torch._utils._rebuild_tensor_v2` over persistent storages) and detectron2's `.pkl` (numpy
//! arrays as `_reconstruct` + `BUILD`) are made of.

use super::pickle::*;

/// Writes a pickle. Each method emits one complete value onto the pickle's stack; no memo is
/// kept (every value is written once), which every unpickler accepts.
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// Protocol 2 is what `torch.save` writes (torch's weights-only loader warns on others);
    /// protocol 3 adds `bytes`, which numpy array data needs.
    pub fn new(protocol: u8) -> Writer {
        Writer {
            out: vec![PROTO, protocol],
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(STOP);
        self.out
    }

    pub fn mark(&mut self) {
        self.out.push(MARK);
    }

    /// Closes the tuple opened by the last [`Writer::mark`].
    pub fn tuple(&mut self) {
        self.out.push(TUPLE);
    }

    pub fn empty_tuple(&mut self) {
        self.out.push(EMPTY_TUPLE);
    }

    pub fn empty_dict(&mut self) {
        self.out.push(EMPTY_DICT);
    }

    /// Sets the (key, value) pairs pushed since the last mark into the dict below the mark.
    pub fn setitems(&mut self) {
        self.out.push(SETITEMS);
    }

    pub fn none(&mut self) {
        self.out.push(NONE);
    }

    pub fn bool(&mut self, b: bool) {
        self.out.push(if b { NEWTRUE } else { NEWFALSE });
    }

    pub fn int(&mut self, v: i64) {
        if let Ok(v) = i32::try_from(v) {
            self.out.push(BININT);
            self.out.extend(v.to_le_bytes());
        } else {
            self.out.extend([LONG1, 8]);
            self.out.extend(v.to_le_bytes());
        }
    }

    pub fn str(&mut self, s: &str) {
        self.out.push(BINUNICODE);
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    /// Needs protocol 3.
    pub fn bytes(&mut self, b: &[u8]) {
        debug_assert!(self.out[1] >= 3, "bytes need pickle protocol 3");
        self.out.push(BINBYTES);
        self.out.extend((b.len() as u32).to_le_bytes());
        self.out.extend(b);
    }

    pub fn global(&mut self, module: &str, name: &str) {
        self.out.push(GLOBAL);
        self.out.extend(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend(name.as_bytes());
        self.out.push(b'\n');
    }

    /// Calls the callable below the argument tuple on top of the stack.
    pub fn reduce(&mut self) {
        self.out.push(REDUCE);
    }

    /// Applies the state on top of the stack to the object below it (`__setstate__`).
    pub fn build(&mut self) {
        self.out.push(BUILD);
    }

    /// Replaces the tuple on top of the stack by the object its persistent id names.
    pub fn persistent_id(&mut self) {
        self.out.push(BINPERSID);
    }

    /// A tuple of ints (shapes, strides).
    pub fn int_tuple(&mut self, v: &[usize]) {
        self.mark();
        for &x in v {
            self.int(x as i64);
        }
        self.tuple();
    }
}
