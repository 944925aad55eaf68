//! Reading Python pickles (protocols 2–5) into an object arena; `numpy.rs` takes numpy arrays
//! out of it and `pickle_writer.rs` writes the opcodes torch and detectron2 files need. No
//! maintained crate does either: serde-pickle has no GLOBAL / REDUCE / BUILD / persistent ids,
//! and burn-store's pytorch-reader reads torch files (we use it for those) but keeps numpy arrays
//! opaque.

use std::collections::HashMap;

use anyhow::{anyhow, bail, ensure, Context, Result};

// Opcodes (CPython Lib/pickle.py).
pub(super) const PROTO: u8 = 0x80;
pub(super) const FRAME: u8 = 0x95;
pub(super) const STOP: u8 = b'.';
pub(super) const MARK: u8 = b'(';
pub(super) const POP: u8 = b'0';
pub(super) const POP_MARK: u8 = b'1';
pub(super) const DUP: u8 = b'2';
pub(super) const NONE: u8 = b'N';
pub(super) const NEWTRUE: u8 = 0x88;
pub(super) const NEWFALSE: u8 = 0x89;
pub(super) const BININT: u8 = b'J';
pub(super) const BININT1: u8 = b'K';
pub(super) const BININT2: u8 = b'M';
pub(super) const LONG1: u8 = 0x8a;
pub(super) const BINFLOAT: u8 = b'G';
pub(super) const BINUNICODE: u8 = b'X';
pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
pub(super) const BINUNICODE8: u8 = 0x8d;
pub(super) const BINSTRING: u8 = b'T';
pub(super) const SHORT_BINSTRING: u8 = b'U';
pub(super) const BINBYTES: u8 = b'B';
pub(super) const SHORT_BINBYTES: u8 = b'C';
pub(super) const BINBYTES8: u8 = 0x8e;
pub(super) const BYTEARRAY8: u8 = 0x96;
pub(super) const EMPTY_TUPLE: u8 = b')';
pub(super) const TUPLE: u8 = b't';
pub(super) const TUPLE1: u8 = 0x85;
pub(super) const TUPLE2: u8 = 0x86;
pub(super) const TUPLE3: u8 = 0x87;
pub(super) const EMPTY_LIST: u8 = b']';
pub(super) const LIST: u8 = b'l';
pub(super) const APPEND: u8 = b'a';
pub(super) const APPENDS: u8 = b'e';
pub(super) const EMPTY_DICT: u8 = b'}';
pub(super) const DICT: u8 = b'd';
pub(super) const SETITEM: u8 = b's';
pub(super) const SETITEMS: u8 = b'u';
pub(super) const GLOBAL: u8 = b'c';
pub(super) const STACK_GLOBAL: u8 = 0x93;
pub(super) const REDUCE: u8 = b'R';
pub(super) const BUILD: u8 = b'b';
pub(super) const NEWOBJ: u8 = 0x81;
pub(super) const BINPERSID: u8 = b'Q';
pub(super) const BINPUT: u8 = b'q';
pub(super) const LONG_BINPUT: u8 = b'r';
pub(super) const BINGET: u8 = b'h';
pub(super) const LONG_BINGET: u8 = b'j';
pub(super) const MEMOIZE: u8 = 0x94;

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

pub(super) fn kind(o: &Obj) -> &'static str {
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

    pub(super) fn global_name(&self, i: usize) -> Option<(&str, &str)> {
        match &self.objs[i] {
            Obj::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }

    pub(super) fn tuple(&self, i: usize) -> Option<&[usize]> {
        match &self.objs[i] {
            Obj::Tuple(t) | Obj::List(t) => Some(t),
            _ => None,
        }
    }

    pub(super) fn int(&self, i: usize) -> Option<i64> {
        match self.objs[i] {
            Obj::Int(v) => Some(v),
            Obj::Bool(b) => Some(b as i64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_foreign_pickles_are_errors() {
        assert!(read(b"\x80\x02}q\x00X\x05\x00\x00\x00ab").is_err());
        assert!(read(b"\x80\x02I12\n.").is_err(), "text INT is not read");
        assert!(read(b"\x80\x02").is_err());
    }
}
