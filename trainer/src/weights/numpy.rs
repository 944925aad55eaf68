//! numpy arrays out of an unpickled file (detectron2's `.pkl`): `_reconstruct(ndarray, …)`
//! with `__setstate__((1, shape, dtype, fortran, data))`, the data as bytes or, from Python 3 at
//! protocol 2, as `_codecs.encode(latin-1 str)`.

use anyhow::{anyhow, bail, ensure, Result};

use super::pickle::{kind, Obj, Unpickled};

impl Unpickled {
    /// The numpy array at `i`, if it is one: (shape, values) of a float or int array, floats
    /// and ints widened or narrowed to what a state dict needs.
    pub fn ndarray(&self, i: usize) -> Result<Option<(Vec<usize>, NdValues)>> {
        let Obj::Call { func, state, .. } = &self.objs[i] else {
            return Ok(None);
        };
        match self.global_name(*func) {
            Some(("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct")) => {}
            _ => return Ok(None),
        }
        let state = state.ok_or_else(|| anyhow!("a numpy array without its state"))?;
        // (version, shape, dtype, is_fortran, data)
        let st = self
            .tuple(state)
            .ok_or_else(|| anyhow!("a numpy array state that is not a tuple"))?;
        ensure!(st.len() == 5, "a numpy array state of {} fields", st.len());
        let shape: Vec<usize> = self
            .tuple(st[1])
            .ok_or_else(|| anyhow!("a numpy array shape that is not a tuple"))?
            .iter()
            .map(|&d| self.int(d).map(|v| v as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("a numpy array shape with a non-int"))?;
        let fortran = self.int(st[3]).unwrap_or(0) != 0;
        let (descr, big_endian) = self.dtype(st[2])?;
        let data: &[u8] = match &self.objs[st[4]] {
            Obj::Bytes(b) => b,
            // Protocol 2 from Python 3: bytes as _codecs.encode(str, 'latin1').
            Obj::Call { func, args, .. }
                if self.global_name(*func) == Some(("_codecs", "encode")) =>
            {
                return self.ndarray_latin1(*args, &shape, &descr, big_endian, fortran);
            }
            other => bail!("numpy array data of type {}", kind(other)),
        };
        decode_array(data, &shape, &descr, big_endian, fortran).map(Some)
    }

    fn ndarray_latin1(
        &self,
        args: usize,
        shape: &[usize],
        descr: &str,
        big_endian: bool,
        fortran: bool,
    ) -> Result<Option<(Vec<usize>, NdValues)>> {
        let a = self
            .tuple(args)
            .ok_or_else(|| anyhow!("_codecs.encode without arguments"))?;
        let Some(Obj::Str(s)) = a.first().map(|&i| &self.objs[i]) else {
            bail!("_codecs.encode of a non-string");
        };
        let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
        decode_array(&bytes, shape, descr, big_endian, fortran).map(Some)
    }

    /// A `numpy.dtype(descr, ...)` object with its BUILD state: (descr like "f4", big endian).
    fn dtype(&self, i: usize) -> Result<(String, bool)> {
        let Obj::Call { func, args, state } = &self.objs[i] else {
            bail!("a numpy array dtype of type {}", kind(&self.objs[i]));
        };
        ensure!(
            self.global_name(*func).map(|g| g.1) == Some("dtype"),
            "a numpy array dtype that is not numpy.dtype"
        );
        let descr = match self
            .tuple(*args)
            .and_then(|a| a.first())
            .map(|&d| &self.objs[d])
        {
            Some(Obj::Str(s)) => s.clone(),
            Some(Obj::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => bail!("a numpy dtype without a type string"),
        };
        // State (version, byte order '<' '>' '|', ...); '<' when absent.
        let big = state
            .and_then(|s| self.tuple(s))
            .and_then(|t| t.get(1))
            .map(|&b| matches!(&self.objs[b], Obj::Str(s) if s == ">"))
            .unwrap_or(false);
        Ok((descr, big))
    }
}

/// The values of a numpy array, in the element type a state dict keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum NdValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

fn decode_array(
    data: &[u8],
    shape: &[usize],
    descr: &str,
    big: bool,
    fortran: bool,
) -> Result<(Vec<usize>, NdValues)> {
    let n: usize = shape.iter().product();
    ensure!(
        !fortran || shape.len() <= 1,
        "a Fortran-ordered numpy array"
    );
    let size = match descr {
        "f4" | "i4" => 4,
        "f8" | "i8" => 8,
        "f2" => 2,
        other => bail!("a numpy array of dtype {other} (f2, f4, f8, i4, i8 are read)"),
    };
    ensure!(
        data.len() == n * size,
        "a numpy array of shape {shape:?} and dtype {descr} with {} bytes",
        data.len()
    );
    let word = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        if big {
            for (j, &b) in c.iter().rev().enumerate() {
                w[j] = b;
            }
        } else {
            w[..c.len()].copy_from_slice(c);
        }
        w
    };
    let chunks = data.chunks_exact(size);
    let values = match descr {
        "f4" => NdValues::F32(
            chunks
                .map(|c| f32::from_le_bytes(word(c)[..4].try_into().unwrap()))
                .collect(),
        ),
        "f8" => NdValues::F32(chunks.map(|c| f64::from_le_bytes(word(c)) as f32).collect()),
        "f2" => NdValues::F32(
            chunks
                .map(|c| {
                    half::f16::from_bits(u16::from_le_bytes(word(c)[..2].try_into().unwrap()))
                        .to_f32()
                })
                .collect(),
        ),
        "i4" => NdValues::I64(
            chunks
                .map(|c| i32::from_le_bytes(word(c)[..4].try_into().unwrap()) as i64)
                .collect(),
        ),
        _ => NdValues::I64(chunks.map(|c| i64::from_le_bytes(word(c))).collect()),
    };
    Ok((shape.to_vec(), values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::pickle::read;

    /// `pickle.dumps(...)` of numpy arrays by numpy 2.4 / Python 3 (bytes pasted from Python):
    /// protocol 4 (frames, MEMOIZE, STACK_GLOBAL, SHORT_BINBYTES), protocol 2 (data through
    /// `_codecs.encode(latin-1 str)`, BINPUT/BINGET) and a big-endian float64 array (protocol 3).
    #[test]
    fn reads_numpy_arrays_of_protocols_2_to_4() {
        // {'a': np.arange(3, dtype='<f4'), 'n': np.array(7)}, protocol 4.
        let p4: &[u8] = b"\x80\x04\x95\xe6\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x03\x85\x94h\x05\x8c\x05dtype\x94\x93\x94\x8c\x02f4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x0c\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x94t\x94b\x8c\x01n\x94h\x04h\x07K\x00\x85\x94h\x09\x87\x94R\x94(K\x01)h\x0e\x8c\x02i8\x94\x89\x88\x87\x94R\x94(K\x03h\x12NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x08\x07\x00\x00\x00\x00\x00\x00\x00\x94t\x94bu.";
        let u = read(p4).unwrap();
        let e = u.dict_entries(u.root).unwrap();
        assert_eq!(e[0].0, "a");
        assert_eq!(
            u.ndarray(e[0].1).unwrap().unwrap(),
            (vec![3], NdValues::F32(vec![0.0, 1.0, 2.0]))
        );
        assert_eq!(e[1].0, "n");
        assert_eq!(
            u.ndarray(e[1].1).unwrap().unwrap(),
            (vec![], NdValues::I64(vec![7]))
        );
        // {'a': np.arange(3, dtype='<f4')}, protocol 2.
        let p2: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01cnumpy._core.multiarray\x0a_reconstruct\x0aq\x02cnumpy\x0andarray\x0aq\x03K\x00\x85q\x04c_codecs\x0aencode\x0aq\x05X\x01\x00\x00\x00bq\x06X\x06\x00\x00\x00latin1q\x07\x86q\x08Rq\x09\x87q\x0aRq\x0b(K\x01K\x03\x85q\x0ccnumpy\x0adtype\x0aq\x0dX\x02\x00\x00\x00f4q\x0e\x89\x88\x87q\x0fRq\x10(K\x03X\x01\x00\x00\x00<q\x11NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x12b\x89h\x05X\x0d\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc2\x80?\x00\x00\x00@q\x13h\x07\x86q\x14Rq\x15tq\x16bs.";
        let u = read(p2).unwrap();
        let e = u.dict_entries(u.root).unwrap();
        assert_eq!(
            u.ndarray(e[0].1).unwrap().unwrap(),
            (vec![3], NdValues::F32(vec![0.0, 1.0, 2.0]))
        );
        // {'a': np.arange(3, dtype='>f8')}, protocol 3.
        let p3: &[u8] = b"\x80\x03}q\x00X\x01\x00\x00\x00aq\x01cnumpy._core.multiarray\x0a_reconstruct\x0aq\x02cnumpy\x0andarray\x0aq\x03K\x00\x85q\x04C\x01bq\x05\x87q\x06Rq\x07(K\x01K\x03\x85q\x08cnumpy\x0adtype\x0aq\x09X\x02\x00\x00\x00f8q\x0a\x89\x88\x87q\x0bRq\x0c(K\x03X\x01\x00\x00\x00>q\x0dNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x0eb\x89C\x18\x00\x00\x00\x00\x00\x00\x00\x00?\xf0\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x00q\x0ftq\x10bs.";
        let u = read(p3).unwrap();
        let e = u.dict_entries(u.root).unwrap();
        assert_eq!(
            u.ndarray(e[0].1).unwrap().unwrap(),
            (vec![3], NdValues::F32(vec![0.0, 1.0, 2.0]))
        );
    }
}
