//! Python pickles of the two kinds weight files are made of: a `torch.save` state dict (tensors as
//! `torch._utils._rebuild_tensor_v2` calls over persistent storages) and detectron2's `.pkl`
//! (numpy arrays as `numpy.core.multiarray._reconstruct` + `BUILD`). No maintained crate does
//! either: serde-pickle has no GLOBAL / REDUCE / BUILD / persistent ids, and burn-store's
//! pytorch-reader reads torch files (we use it for those) but keeps numpy arrays opaque. So this
//! file writes the small fixed set of opcodes those layouts need, and reads any pickle protocol
//! 2–5 into an object arena from which numpy arrays are taken.

use std::collections::HashMap;

use anyhow::{anyhow, bail, ensure, Context, Result};

// Opcodes (CPython Lib/pickle.py).
const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const BINFLOAT: u8 = b'G';
const BINUNICODE: u8 = b'X';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES8: u8 = 0x8e;
const BYTEARRAY8: u8 = 0x96;
const EMPTY_TUPLE: u8 = b')';
const TUPLE: u8 = b't';
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const EMPTY_LIST: u8 = b']';
const LIST: u8 = b'l';
const APPEND: u8 = b'a';
const APPENDS: u8 = b'e';
const EMPTY_DICT: u8 = b'}';
const DICT: u8 = b'd';
const SETITEM: u8 = b's';
const SETITEMS: u8 = b'u';
const GLOBAL: u8 = b'c';
const STACK_GLOBAL: u8 = 0x93;
const REDUCE: u8 = b'R';
const BUILD: u8 = b'b';
const NEWOBJ: u8 = 0x81;
const BINPERSID: u8 = b'Q';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const MEMOIZE: u8 = 0x94;

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

/// One object of an unpickled file. Containers refer to other objects by their arena index,
/// so an object the memo hands out twice is one object, and filling it later (SETITEMS after
/// MEMOIZE, BUILD after the memo keeps a dtype) is seen through every reference.
#[derive(Debug, Clone)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Global(String, String),
    /// `func(*args)`, with the state a later BUILD gave it.
    Call {
        func: usize,
        args: usize,
        state: Option<usize>,
    },
    /// A persistent id (torch storages); kept only so such files fail with a clear message.
    Persistent(usize),
}

/// An unpickled file: the arena and the index of the root object.
pub struct Unpickled {
    pub objs: Vec<Obj>,
    pub root: usize,
}

/// The most objects one file may create (a hostile file cannot exhaust memory through it).
const MAX_OBJECTS: usize = 50_000_000;

/// Reads a pickle (protocols 2 to 5, and the binary opcodes of protocol 1) into an arena.
pub fn read(bytes: &[u8]) -> Result<Unpickled> {
    let mut r = Cursor { b: bytes, at: 0 };
    let mut objs: Vec<Obj> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u64, usize> = HashMap::new();
    let push = |objs: &mut Vec<Obj>, stack: &mut Vec<usize>, o: Obj| -> Result<()> {
        ensure!(objs.len() < MAX_OBJECTS, "more than {MAX_OBJECTS} objects");
        objs.push(o);
        stack.push(objs.len() - 1);
        Ok(())
    };
    loop {
        let at = r.at;
        let op = r.u8()?;
        let pop = |stack: &mut Vec<usize>| {
            stack
                .pop()
                .ok_or_else(|| anyhow!("pickle opcode {op:#04x} at byte {at}: empty stack"))
        };
        let pop_mark = |stack: &mut Vec<usize>, marks: &mut Vec<usize>| -> Result<Vec<usize>> {
            let m = marks
                .pop()
                .ok_or_else(|| anyhow!("pickle opcode {op:#04x} at byte {at}: no mark"))?;
            ensure!(
                m <= stack.len(),
                "pickle: mark above the stack at byte {at}"
            );
            Ok(stack.split_off(m))
        };
        match op {
            PROTO => {
                let v = r.u8()?;
                ensure!(v <= 5, "pickle protocol {v} (this reader knows 2 to 5)");
            }
            FRAME => {
                r.take(8)?;
            }
            STOP => {
                let root = pop(&mut stack)?;
                return Ok(Unpickled { objs, root });
            }
            MARK => marks.push(stack.len()),
            POP => {
                pop(&mut stack)?;
            }
            POP_MARK => {
                pop_mark(&mut stack, &mut marks)?;
            }
            DUP => {
                let top = *stack
                    .last()
                    .ok_or_else(|| anyhow!("pickle: DUP on empty stack"))?;
                stack.push(top);
            }
            NONE => push(&mut objs, &mut stack, Obj::None)?,
            NEWTRUE => push(&mut objs, &mut stack, Obj::Bool(true))?,
            NEWFALSE => push(&mut objs, &mut stack, Obj::Bool(false))?,
            BININT => {
                let v = i32::from_le_bytes(r.array()?);
                push(&mut objs, &mut stack, Obj::Int(v as i64))?
            }
            BININT1 => {
                let v = r.u8()?;
                push(&mut objs, &mut stack, Obj::Int(v as i64))?
            }
            BININT2 => {
                let v = u16::from_le_bytes(r.array()?);
                push(&mut objs, &mut stack, Obj::Int(v as i64))?
            }
            LONG1 => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                ensure!(n <= 8, "pickle: an int of {n} bytes at byte {at}");
                // Two's complement, little-endian, sign-extended.
                let mut v: i64 = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                    -1
                } else {
                    0
                };
                for &x in b.iter().rev() {
                    v = (v << 8) | x as i64;
                }
                push(&mut objs, &mut stack, Obj::Int(v))?
            }
            BINFLOAT => {
                let v = f64::from_be_bytes(r.array()?);
                push(&mut objs, &mut stack, Obj::Float(v))?
            }
            BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 => {
                let n = r.len(op == SHORT_BINUNICODE, op == BINUNICODE8)?;
                let s = std::str::from_utf8(r.take(n)?)
                    .with_context(|| format!("pickle: a string at byte {at} is not UTF-8"))?;
                push(&mut objs, &mut stack, Obj::Str(s.to_string()))?
            }
            // Python 2 `str`: bytes (numpy array data in Python 2 pickles).
            BINSTRING | SHORT_BINSTRING | BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                let short = op == SHORT_BINSTRING || op == SHORT_BINBYTES;
                let n = r.len(short, op == BINBYTES8 || op == BYTEARRAY8)?;
                let b = r.take(n)?.to_vec();
                push(&mut objs, &mut stack, Obj::Bytes(b))?
            }
            EMPTY_TUPLE => push(&mut objs, &mut stack, Obj::Tuple(vec![]))?,
            TUPLE => {
                let items = pop_mark(&mut stack, &mut marks)?;
                push(&mut objs, &mut stack, Obj::Tuple(items))?
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = (op - TUPLE1 + 1) as usize;
                ensure!(
                    stack.len() >= n,
                    "pickle: TUPLE{n} at byte {at} on a short stack"
                );
                let items = stack.split_off(stack.len() - n);
                push(&mut objs, &mut stack, Obj::Tuple(items))?
            }
            EMPTY_LIST => push(&mut objs, &mut stack, Obj::List(vec![]))?,
            LIST => {
                let items = pop_mark(&mut stack, &mut marks)?;
                push(&mut objs, &mut stack, Obj::List(items))?
            }
            APPEND | APPENDS => {
                let items = if op == APPEND {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                let list = *stack
                    .last()
                    .ok_or_else(|| anyhow!("pickle: APPEND on empty stack"))?;
                match &mut objs[list] {
                    Obj::List(l) => l.extend(items),
                    other => bail!("pickle: APPEND to a {} at byte {at}", kind(other)),
                }
            }
            EMPTY_DICT => push(&mut objs, &mut stack, Obj::Dict(vec![]))?,
            DICT | SETITEM | SETITEMS => {
                let items = if op == SETITEM {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                ensure!(items.len() % 2 == 0, "pickle: odd dict items at byte {at}");
                let pairs: Vec<(usize, usize)> = items.chunks(2).map(|p| (p[0], p[1])).collect();
                if op == DICT {
                    push(&mut objs, &mut stack, Obj::Dict(pairs))?
                } else {
                    let d = *stack
                        .last()
                        .ok_or_else(|| anyhow!("pickle: SETITEM on empty stack"))?;
                    match &mut objs[d] {
                        Obj::Dict(m) => m.extend(pairs),
                        other => bail!("pickle: SETITEM on a {} at byte {at}", kind(other)),
                    }
                }
            }
            GLOBAL => {
                let module = r.line()?;
                let name = r.line()?;
                push(&mut objs, &mut stack, Obj::Global(module, name))?
            }
            STACK_GLOBAL => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                let (Obj::Str(m), Obj::Str(n)) = (&objs[module], &objs[name]) else {
                    bail!("pickle: STACK_GLOBAL without two strings at byte {at}");
                };
                let g = Obj::Global(m.clone(), n.clone());
                push(&mut objs, &mut stack, g)?
            }
            REDUCE | NEWOBJ => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                push(
                    &mut objs,
                    &mut stack,
                    Obj::Call {
                        func,
                        args,
                        state: None,
                    },
                )?
            }
            BUILD => {
                let s = pop(&mut stack)?;
                let o = *stack
                    .last()
                    .ok_or_else(|| anyhow!("pickle: BUILD on empty stack"))?;
                match &mut objs[o] {
                    Obj::Call { state, .. } => *state = Some(s),
                    other => bail!("pickle: BUILD on a {} at byte {at}", kind(other)),
                }
            }
            BINPERSID => {
                let pid = pop(&mut stack)?;
                push(&mut objs, &mut stack, Obj::Persistent(pid))?
            }
            BINPUT | LONG_BINPUT | MEMOIZE => {
                let key = match op {
                    BINPUT => r.u8()? as u64,
                    LONG_BINPUT => u32::from_le_bytes(r.array()?) as u64,
                    _ => memo.len() as u64,
                };
                let top = *stack
                    .last()
                    .ok_or_else(|| anyhow!("pickle: PUT on empty stack"))?;
                memo.insert(key, top);
            }
            BINGET | LONG_BINGET => {
                let key = if op == BINGET {
                    r.u8()? as u64
                } else {
                    u32::from_le_bytes(r.array()?) as u64
                };
                let o = *memo
                    .get(&key)
                    .ok_or_else(|| anyhow!("pickle: memo key {key} unset at byte {at}"))?;
                stack.push(o);
            }
            _ => bail!("pickle: opcode {op:#04x} at byte {at} is not one weight files use"),
        }
    }
}

fn kind(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Bool(_) => "bool",
        Obj::Int(_) => "int",
        Obj::Float(_) => "float",
        Obj::Str(_) => "str",
        Obj::Bytes(_) => "bytes",
        Obj::Tuple(_) => "tuple",
        Obj::List(_) => "list",
        Obj::Dict(_) => "dict",
        Obj::Global(..) => "class",
        Obj::Call { .. } => "object",
        Obj::Persistent(_) => "persistent id",
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| anyhow!("pickle: truncated at byte {} (wanted {n} more)", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().unwrap())
    }
    fn len(&mut self, short: bool, long: bool) -> Result<usize> {
        Ok(if short {
            self.u8()? as usize
        } else if long {
            u64::from_le_bytes(self.array()?) as usize
        } else {
            u32::from_le_bytes(self.array()?) as usize
        })
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| anyhow!("pickle: unterminated name at byte {}", self.at))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(s)
    }
}

impl Unpickled {
    pub fn get(&self, i: usize) -> &Obj {
        &self.objs[i]
    }

    /// The string entries of the dict at `i` (other keys are skipped).
    pub fn dict_entries(&self, i: usize) -> Option<Vec<(&str, usize)>> {
        match &self.objs[i] {
            Obj::Dict(pairs) => Some(
                pairs
                    .iter()
                    .filter_map(|&(k, v)| match &self.objs[k] {
                        Obj::Str(s) => Some((s.as_str(), v)),
                        _ => None,
                    })
                    .collect(),
            ),
            // collections.OrderedDict() filled by SETITEMS: a call with dict items in its state
            // is not what pickle writes; an OrderedDict's items go through SETITEMS onto the call.
            _ => None,
        }
    }

    fn global_name(&self, i: usize) -> Option<(&str, &str)> {
        match &self.objs[i] {
            Obj::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }

    fn tuple(&self, i: usize) -> Option<&[usize]> {
        match &self.objs[i] {
            Obj::Tuple(t) | Obj::List(t) => Some(t),
            _ => None,
        }
    }

    fn int(&self, i: usize) -> Option<i64> {
        match self.objs[i] {
            Obj::Int(v) => Some(v),
            Obj::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    /// The numpy array at `i`, if it is one: (shape, values) of a float or int array, floats
    /// and ints widened or narrowed to what a state dict needs.
    pub fn ndarray(&self, i: usize) -> Result<Option<(Vec<usize>, NdValues)>> {
        let Obj::Call { func, args, state } = &self.objs[i] else {
            return Ok(None);
        };
        match self.global_name(*func) {
            Some(("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct")) => {}
            _ => return Ok(None),
        }
        let _ = args;
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
                .map(|c| f16_to_f32(u16::from_le_bytes(word(c)[..2].try_into().unwrap())))
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

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn truncated_and_foreign_pickles_are_errors() {
        assert!(read(b"\x80\x02}q\x00X\x05\x00\x00\x00ab").is_err());
        assert!(read(b"\x80\x02I12\n.").is_err(), "text INT is not read");
        assert!(read(b"\x80\x02").is_err());
    }
}
