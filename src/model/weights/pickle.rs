//! A deliberately small pickle reader for detectron2 model-zoo checkpoints (`model_final_*.pkl`):
//! a dict whose `"model"` entry maps parameter names to numpy arrays, as
//! `detectron2/checkpoint/detection_checkpoint.py` reads it with `pickle.load(f, encoding="latin1")`.
//!
//! Every protocol from 0 to 5 is read (the text protocols 0 and 1 and protocol 2 are what Python 2
//! wrote; numpy 1.x and 2.x layouts alike), with the memo, `MARK`-based and text opcodes and
//! in-band protocol-5 buffers. Python 2 `str` is decoded as latin-1, as `encoding="latin1"` does.
//! Only these globals are recognised, and nothing is ever imported or executed:
//! `numpy.core.multiarray._reconstruct` and `.scalar`, `numpy.core.numeric._frombuffer` (each also
//! under numpy 2's `numpy._core`), `numpy.ndarray`, `numpy.dtype`, `_codecs.encode` (how protocols
//! 0–2 write Python 3 bytes), `collections.OrderedDict`, and the builtins `bytes`, `bytearray`,
//! `set` and `frozenset`. Any other global, persistent IDs, the extension registry and out-of-band
//! buffers are refused with their name.
//!
//! Robustness: every length read from the file is checked against the bytes that remain, array
//! sizes are checked against their payload with overflow checks, an array can be extracted once
//! only by [`read_state_dict`], and copies of shared payloads and the tree [`read_value`] builds
//! are bounded by the file's size, so no allocation grows beyond a small multiple of the file.

use std::collections::HashMap;

mod globals;
mod text;
mod tree;

use globals::Global;
use text::{PyInt, Text};
pub use tree::{read_value, Value};

/// Why a pickle could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error("the file ends early (at byte {offset}): truncated or not a pickle")]
    Truncated { offset: usize },
    #[error(
        "pickle opcode 0x{opcode:02x} ({}) at byte {offset} is not supported by this reader",
        text::opcode_name(*opcode)
    )]
    Opcode { opcode: u8, offset: usize },
    #[error(
        "the pickle asks for the Python global `{module}.{name}`; only numpy arrays are accepted \
         and nothing else is executed"
    )]
    ForeignGlobal { module: String, name: String },
    #[error("malformed pickle at byte {offset}: {message}")]
    Invalid { offset: usize, message: String },
}

/// Element types numpy arrays in checkpoints use (big-endian arrays are byte-swapped on reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    fn parse(descr: &str) -> Option<DType> {
        let d = descr.trim_start_matches(['<', '|', '=', '>']);
        Some(match d {
            "f2" | "float16" => DType::F16,
            "f4" | "float32" => DType::F32,
            "f8" | "float64" => DType::F64,
            "i1" | "int8" => DType::I8,
            "i2" | "int16" => DType::I16,
            "i4" | "int32" => DType::I32,
            "i8" | "int64" => DType::I64,
            "u1" | "uint8" => DType::U8,
            "b1" | "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }
}

/// A numpy array as stored: raw little-endian bytes in C or Fortran order.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub fortran_order: bool,
    pub data: Vec<u8>,
}

type Id = usize;

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    FrozenSet(Vec<Id>),
    Global(Global),
    DType {
        dtype: Option<DType>,
        descr: String,
        big_endian: bool,
    },
    /// `None` until BUILD fills it in.
    Array(Option<NdArray>),
    Scalar(NdArray),
    /// A large `str` whose characters are all ≤ U+00FF, kept as its latin-1 bytes: protocols 0–2
    /// write array payloads this way, and the text form would only be converted back.
    Latin1(Vec<u8>),
    /// A large payload whose memory was released once used.
    Consumed,
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    /// Bytes copied out of shared (memoised) payloads so far; bounded by the file's size.
    copied: usize,
}

/// Payloads larger than this are moved (not copied) when used, and strings larger than this are
/// decoded straight to latin-1 bytes. No real key or name comes near this length; the tiny test
/// fixture's arrays (up to 128 KiB) already take these paths.
const RELEASE_AFTER_USE: usize = 4096;

/// The most arguments an allow-listed callable takes (`_frombuffer`: 4), with room to spare; more
/// is refused before anything is copied.
const MAX_ARGS: usize = 8;

/// numpy's own limit on dimensions (`NPY_MAXDIMS` is 32 in numpy 1, 64 in numpy 2).
const MAX_DIMS: usize = 64;

impl<'a> Vm<'a> {
    fn new(data: &'a [u8]) -> Self {
        Vm {
            data,
            pos: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            copied: 0,
        }
    }

    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError::Invalid {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        // Every length comes from the file: compare with what is left before slicing.
        if n > self.data.len() - self.pos {
            return Err(PickleError::Truncated {
                offset: self.data.len(),
            });
        }
        let d: &'a [u8] = self.data;
        let s = &d[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64_len(&mut self) -> Result<usize, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(a)).map_err(|_| PickleError::Truncated {
            offset: self.data.len(),
        })
    }

    /// The bytes up to the next newline (which is consumed), as the text opcodes read them.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let d: &'a [u8] = self.data;
        let rest = &d[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.data.len(),
            })?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn name_line(&mut self) -> Result<&'a str, PickleError> {
        let l = self.line()?;
        std::str::from_utf8(l).map_err(|_| self.err("a global's name is not UTF-8"))
    }

    fn push(&mut self, o: Obj) -> Id {
        self.objs.push(o);
        let id = self.objs.len() - 1;
        self.stack.push(id);
        id
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("stack underflow at a MARK"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("stack underflow at a MARK"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err("empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let m = self.marks.pop().ok_or_else(|| self.err("no MARK"))?;
        if m > self.stack.len() {
            return Err(self.err("MARK beyond the stack"));
        }
        Ok(self.stack.split_off(m))
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a short tuple (arguments, states), copied; a long one is refused uncopied.
    fn args_of(&self, id: Id, what: &str) -> Result<Vec<Id>, PickleError> {
        match &self.objs[id] {
            Obj::Tuple(v) if v.len() <= MAX_ARGS => Ok(v.clone()),
            Obj::Tuple(v) => Err(self.err(format!("{what} has {} items", v.len()))),
            _ => Err(self.err(format!("{what} is not a tuple"))),
        }
    }

    fn set_items(&mut self, dict: Id, items: &[Id]) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let pairs = items.chunks(2).map(|c| (c[0], c[1]));
        match &mut self.objs[dict] {
            Obj::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM on a non-dict")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.err(format!("memo {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    /// A decimal memo index (PUT, GET).
    fn memo_line(&mut self) -> Result<u64, PickleError> {
        let l = self.line()?;
        std::str::from_utf8(l)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.err("a memo index is not a non-negative integer"))
    }

    fn push_int(&mut self, v: PyInt) {
        match v {
            PyInt::Small(n) => self.push(Obj::Int(n)),
            PyInt::Big(s) => self.push(Obj::BigInt(s)),
        };
    }

    /// A string whose characters are all ≤ U+00FF: large ones stay latin-1 bytes (payloads).
    fn push_latin1(&mut self, b: Vec<u8>) {
        if b.len() > RELEASE_AFTER_USE {
            self.push(Obj::Latin1(b));
        } else {
            self.push(Obj::Str(b.iter().map(|&c| c as char).collect()));
        }
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!(
                            "pickle protocol {proto} is not supported (0 to 5 are)"
                        )));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    // POP on an empty frame drops the MARK itself, as CPython does.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'}' => {
                    self.push(Obj::Dict(Vec::new()));
                }
                b']' => {
                    self.push(Obj::List(Vec::new()));
                }
                b')' => {
                    self.push(Obj::Tuple(Vec::new()));
                }
                0x8f => {
                    self.push(Obj::Set(Vec::new()));
                }
                b'N' => {
                    self.push(Obj::None);
                }
                0x88 => {
                    self.push(Obj::Bool(true));
                }
                0x89 => {
                    self.push(Obj::Bool(false));
                }
                b'J' | b'K' | b'M' | 0x8a | 0x8b | b'G' | b'X' | 0x8c | 0x8d | b'T' | b'U'
                | b'B' | b'C' | 0x8e | 0x96 => self.binary(op, at)?,
                b'I' | b'L' | b'F' | b'S' | b'V' => self.text(op)?,
                _ => self.structure(op, at)?,
            }
        }
    }

    /// Binary opcodes that push one number, string or byte string read from the stream.
    fn binary(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            b'J' => {
                let v = self.u32()? as i32;
                self.push(Obj::Int(v as i64));
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Obj::Int(v as i64));
            }
            b'M' => {
                let b = self.take(2)?;
                self.push(Obj::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    self.u8()? as usize
                } else {
                    let n = self.u32()? as i32;
                    usize::try_from(n).map_err(|_| self.err("LONG4 with a negative length"))?
                };
                let b = self.take(n)?;
                let v = text::int_from_le(b)
                    .ok_or_else(|| self.err(format!("an integer of {n} bytes is too large")))?;
                self.push_int(v);
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Obj::Float(f64::from_be_bytes(a)));
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => self.u32()? as usize,
                    0x8c => self.u8()? as usize,
                    _ => self.u64_len()?,
                };
                let b = self.take(n)?;
                // Large strings are array payloads: decode straight to latin-1 bytes.
                if n > RELEASE_AFTER_USE {
                    if let Some(l) = utf8_to_latin1(b) {
                        self.push(Obj::Latin1(l));
                        return Ok(());
                    }
                }
                let s = std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))?;
                self.push(Obj::Str(s.to_string()));
            }
            b'T' | b'U' => {
                let n = if op == b'T' {
                    let n = self.u32()? as i32;
                    usize::try_from(n).map_err(|_| self.err("BINSTRING with a negative length"))?
                } else {
                    self.u8()? as usize
                };
                // Python 2 `str`, decoded as latin-1 (what `encoding="latin1"` does).
                let b = self.take(n)?.to_vec();
                self.push_latin1(b);
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'B' => self.u32()? as usize,
                    b'C' => self.u8()? as usize,
                    _ => self.u64_len()?,
                };
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            _ => {
                return Err(PickleError::Opcode {
                    opcode: op,
                    offset: at,
                })
            }
        }
        Ok(())
    }

    /// Text opcodes of protocols 0 and 1 (also written by Python 2 in every protocol for `int`
    /// beyond 32 bits): the argument is the rest of the line.
    fn text(&mut self, op: u8) -> Result<(), PickleError> {
        let l = self.line()?;
        match op {
            b'I' => match l {
                b"00" => {
                    self.push(Obj::Bool(false));
                }
                b"01" => {
                    self.push(Obj::Bool(true));
                }
                _ => {
                    let v = text::parse_int(l).ok_or_else(|| self.err("INT is not an integer"))?;
                    self.push_int(v);
                }
            },
            b'L' => {
                let digits = l.strip_suffix(b"L").unwrap_or(l);
                let v =
                    text::parse_int(digits).ok_or_else(|| self.err("LONG is not an integer"))?;
                self.push_int(v);
            }
            b'F' => {
                let v = text::parse_float(l).ok_or_else(|| self.err("FLOAT is not a number"))?;
                self.push(Obj::Float(v));
            }
            b'S' => {
                let b = text::unquote_string(l).map_err(|m| self.err(m))?;
                self.push_latin1(b);
            }
            _ => match text::raw_unicode_escape(l).map_err(|m| self.err(m))? {
                Text::Latin1(b) => self.push_latin1(b),
                Text::Wide(s) => {
                    self.push(Obj::Str(s));
                }
            },
        }
        Ok(())
    }

    /// PUT, BINPUT, LONG_BINPUT, MEMOIZE and GET, BINGET, LONG_BINGET.
    fn memo_op(&mut self, op: u8) -> Result<(), PickleError> {
        match op {
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k as u64)?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k as u64)?;
            }
            b'p' => {
                let k = self.memo_line()?;
                self.memo_put(k)?;
            }
            0x94 => self.memo_put(self.memo.len() as u64)?,
            b'h' => {
                let k = self.u8()?;
                self.memo_get(k as u64)?;
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k as u64)?;
            }
            b'g' => {
                let k = self.memo_line()?;
                self.memo_get(k)?;
            }
            _ => return Err(self.err(format!("opcode 0x{op:02x} is not a memo opcode"))),
        }
        Ok(())
    }

    /// Opcodes that build containers, call globals, or use the memo.
    fn structure(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            b'c' | b'i' => {
                let module = self.name_line()?;
                let name = self.name_line()?;
                let g = self.global(module, name)?;
                if op == b'c' {
                    self.push(Obj::Global(g));
                } else {
                    // INST: `module.name(*items since the MARK)`.
                    let args = self.pop_mark()?;
                    if args.len() > MAX_ARGS {
                        return Err(self.err(format!("INST with {} arguments", args.len())));
                    }
                    self.objs.push(Obj::Global(g));
                    let func = self.objs.len() - 1;
                    let o = self.call(func, &args)?;
                    self.push(o);
                }
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (m, n) = match (self.str_of(module), self.str_of(name)) {
                    (Some(m), Some(n)) => (m.to_string(), n.to_string()),
                    _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                };
                let g = self.global(&m, &n)?;
                self.push(Obj::Global(g));
            }
            b'q' | b'r' | b'p' | 0x94 | b'h' | b'j' | b'g' => self.memo_op(op)?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Obj::Tuple(items));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Obj::List(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                let id = self.push(Obj::Dict(Vec::new()));
                self.set_items(id, &items)?;
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Obj::FrozenSet(items));
            }
            b'R' | 0x81 => {
                // REDUCE: func(*args); NEWOBJ: cls.__new__(cls, *args), the same for these types.
                let args = self.pop()?;
                let func = self.pop()?;
                let a = self.args_of(args, "the arguments")?;
                let o = self.call(func, &a)?;
                self.push(o);
            }
            0x92 => {
                // NEWOBJ_EX: cls, args, kwargs; no allow-listed type takes keyword arguments.
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let func = self.pop()?;
                if !matches!(&self.objs[kwargs], Obj::Dict(d) if d.is_empty()) {
                    return Err(self.err("NEWOBJ_EX with keyword arguments"));
                }
                let a = self.args_of(args, "the arguments")?;
                let o = self.call(func, &a)?;
                self.push(o);
            }
            b'o' => {
                // OBJ: MARK cls args... OBJ
                let items = self.pop_mark()?;
                let Some((&func, args)) = items.split_first() else {
                    return Err(self.err("OBJ without a class"));
                };
                if args.len() > MAX_ARGS {
                    return Err(self.err(format!("OBJ with {} arguments", args.len())));
                }
                let o = self.call(func, args)?;
                self.push(o);
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                self.build(target, state)?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.set_items(d, &[k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let d = self.top()?;
                self.set_items(d, &items)?;
            }
            b'a' | b'e' | 0x90 => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let l = self.top()?;
                match (&mut self.objs[l], op) {
                    (Obj::List(v), b'a' | b'e') | (Obj::Set(v), 0x90) => v.extend(items),
                    _ => return Err(self.err("APPEND to a non-list or ADDITEMS to a non-set")),
                }
            }
            0x98 => {
                // READONLY_BUFFER: in-band buffers are already immutable copies here.
                let t = self.top()?;
                if !matches!(self.objs[t], Obj::Bytes(_)) {
                    return Err(self.err("READONLY_BUFFER on something that is not a buffer"));
                }
            }
            // PERSID, BINPERSID (objects outside the file), EXT1/2/4 (the extension registry),
            // NEXT_BUFFER (out-of-band data) and anything unknown.
            _ => {
                return Err(PickleError::Opcode {
                    opcode: op,
                    offset: at,
                })
            }
        }
        Ok(())
    }
}

/// UTF-8 text whose code points are all ≤ U+00FF, as latin-1 bytes (one pass, no `String`).
fn utf8_to_latin1(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            out.push(c);
            i += 1;
        } else if (c == 0xC2 || c == 0xC3) && i + 1 < b.len() && b[i + 1] & 0xC0 == 0x80 {
            out.push(((c & 0x1F) << 6) | (b[i + 1] & 0x3F));
            i += 2;
        } else {
            return None;
        }
    }
    Some(out)
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

/// What a model-zoo pickle holds.
#[derive(Debug)]
pub struct PickledStateDict {
    /// `(name, array)` in file order.
    pub tensors: Vec<(String, NdArray)>,
    /// Top-level entries other than the state dict (e.g. `__author__`), for the report.
    pub other_keys: Vec<String>,
}

/// Reads a detectron2 checkpoint pickle: `{"model": {name: ndarray}, ...}` or a bare
/// `{name: ndarray}` dict.
pub fn read_state_dict(bytes: &[u8]) -> Result<PickledStateDict, PickleError> {
    let mut vm = Vm::new(bytes);
    let root = vm.run()?;
    let end = vm.pos;
    let invalid = |m: &str| PickleError::Invalid {
        offset: end,
        message: m.to_string(),
    };
    let Obj::Dict(top) = &vm.objs[root] else {
        return Err(invalid("the pickle's top-level object is not a dict"));
    };
    let top = top.clone();
    let key_str = |vm: &Vm, k: Id| vm.str_of(k).map(str::to_string);
    let model = top
        .iter()
        .find(|(k, _)| vm.str_of(*k) == Some("model"))
        .map(|&(_, v)| v);
    let (entries, other_keys) = match model {
        Some(m) => {
            let Obj::Dict(e) = &vm.objs[m] else {
                return Err(invalid("the `model` entry is not a dict"));
            };
            let others = top
                .iter()
                .filter(|(k, _)| vm.str_of(*k) != Some("model"))
                .map(|&(k, _)| key_str(&vm, k).unwrap_or_else(|| "<non-string key>".into()))
                .collect();
            (e.clone(), others)
        }
        None => (top, Vec::new()),
    };
    let mut seen = std::collections::HashSet::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let name = key_str(&vm, k).ok_or_else(|| invalid("a state-dict key is not a string"))?;
        if !seen.insert(v) {
            return Err(invalid(&format!(
                "`{name}` shares its array with another entry"
            )));
        }
        match std::mem::replace(&mut vm.objs[v], Obj::Consumed) {
            Obj::Array(Some(a)) => tensors.push((name, a)),
            Obj::Array(None) => return Err(invalid(&format!("`{name}` is an array without data"))),
            _ => return Err(invalid(&format!("`{name}` is not a numpy array"))),
        }
    }
    Ok(PickledStateDict {
        tensors,
        other_keys,
    })
}

#[cfg(test)]
mod tests;
