//! A deliberately small pickle reader for detectron2 model-zoo checkpoints (`model_final_*.pkl`):
//! a dict whose `"model"` entry maps parameter names to numpy arrays, as
//! `detectron2/checkpoint/detection_checkpoint.py` reads it with `pickle.load(f, encoding="latin1")`.
//!
//! Only the opcodes such files use (protocols 2–5, no out-of-band buffers) are implemented, and only
//! these globals are recognised — nothing is ever imported or executed:
//! `numpy.core.multiarray._reconstruct` (also `numpy._core.…`), `numpy.ndarray`, `numpy.dtype`,
//! `numpy.core.multiarray.scalar`, `numpy.core.numeric._frombuffer`, `_codecs.encode` (protocol 2's
//! way of writing bytes) and `collections.OrderedDict`. Any other global is refused with its name.
//!
//! Robustness: every length read from the file is checked against the bytes that remain, array
//! sizes are checked against their payload with overflow checks, and an array can be extracted
//! once only, so no allocation exceeds what the file itself holds.

use std::collections::HashMap;

/// Why a pickle could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error("the file ends early (at byte {offset}): truncated or not a pickle")]
    Truncated { offset: usize },
    #[error("pickle opcode 0x{opcode:02x} at byte {offset} is not supported by this reader")]
    Opcode { opcode: u8, offset: usize },
    #[error(
        "the pickle asks for the Python global `{module}.{name}`; only numpy arrays are accepted \
         and nothing else is executed"
    )]
    ForeignGlobal { module: String, name: String },
    #[error("malformed pickle at byte {offset}: {message}")]
    Invalid { offset: usize, message: String },
}

/// Element types numpy arrays in checkpoints use (little-endian only).
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
        let d = descr.trim_start_matches(['<', '|', '=']);
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    Reconstruct,
    NdArrayType,
    DTypeType,
    Scalar,
    FromBuffer,
    CodecsEncode,
    OrderedDict,
}

type Id = usize;

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// A float; checkpoints' floats (e.g. metadata) are never needed, only skipped.
    Float,
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    DType {
        dtype: Option<DType>,
        descr: String,
        big_endian: bool,
    },
    /// `None` until BUILD fills it in.
    Array(Option<NdArray>),
    /// A large `str` whose characters are all ≤ U+00FF, kept as its latin-1 bytes: protocol 2
    /// writes array payloads this way, and the text form would only be converted back.
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
    memo: HashMap<u32, Id>,
}

/// Payloads larger than this are moved (not copied) when used, and strings larger than this are
/// decoded straight to latin-1 bytes. No real key or name comes near this length; the tiny test
/// fixture's arrays (up to 128 KiB) already take these paths.
const RELEASE_AFTER_USE: usize = 4096;

impl<'a> Vm<'a> {
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

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let d: &'a [u8] = self.data;
        let rest = &d[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.data.len(),
            })?;
        let s =
            std::str::from_utf8(&rest[..end]).map_err(|_| self.err("GLOBAL name is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
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

    fn tuple_of(&self, id: Id) -> Result<&[Id], PickleError> {
        match &self.objs[id] {
            Obj::Tuple(v) => Ok(v),
            _ => Err(self.err("expected a tuple")),
        }
    }

    fn global(&self, module: &str, name: &str) -> Result<Global, PickleError> {
        let core = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
        let numeric = matches!(module, "numpy.core.numeric" | "numpy._core.numeric");
        Ok(match (module, name) {
            (_, "_reconstruct") if core => Global::Reconstruct,
            (_, "scalar") if core => Global::Scalar,
            (_, "_frombuffer") if numeric => Global::FromBuffer,
            ("numpy", "ndarray") => Global::NdArrayType,
            ("numpy", "dtype") => Global::DTypeType,
            ("_codecs", "encode") => Global::CodecsEncode,
            ("collections", "OrderedDict") => Global::OrderedDict,
            _ => {
                return Err(PickleError::ForeignGlobal {
                    module: module.into(),
                    name: name.into(),
                })
            }
        })
    }

    /// Bytes of a payload: `bytes`, or a latin-1 `str` (Python 2 pickles, `encoding="latin1"`).
    /// A large payload is moved out (and its object marked consumed) rather than copied.
    fn payload(&mut self, id: Id) -> Result<Vec<u8>, PickleError> {
        let large = match &self.objs[id] {
            Obj::Bytes(b) | Obj::Latin1(b) => b.len() > RELEASE_AFTER_USE,
            _ => false,
        };
        if large {
            if let Obj::Bytes(b) | Obj::Latin1(b) =
                std::mem::replace(&mut self.objs[id], Obj::Consumed)
            {
                return Ok(b);
            }
        }
        match &self.objs[id] {
            Obj::Bytes(b) | Obj::Latin1(b) => Ok(b.clone()),
            Obj::Str(s) => latin1(s).ok_or_else(|| self.err("array payload string is not latin-1")),
            Obj::Consumed => Err(self.err("a large payload is used twice")),
            _ => Err(self.err("array payload is neither bytes nor str")),
        }
    }

    fn dtype_of(&self, id: Id) -> Result<DType, PickleError> {
        match &self.objs[id] {
            Obj::DType {
                dtype: Some(d),
                big_endian: false,
                ..
            } => Ok(*d),
            Obj::DType {
                big_endian: true,
                descr,
                ..
            } => Err(self.err(format!("big-endian arrays ({descr}) are not supported"))),
            Obj::DType { descr, .. } => {
                Err(self.err(format!("numpy dtype `{descr}` is not supported")))
            }
            _ => Err(self.err("expected a numpy dtype")),
        }
    }

    fn shape_of(&self, id: Id) -> Result<Vec<i64>, PickleError> {
        let items = match &self.objs[id] {
            Obj::Tuple(v) | Obj::List(v) => v,
            _ => return Err(self.err("array shape is not a tuple")),
        };
        items
            .iter()
            .map(|&i| match self.objs[i] {
                Obj::Int(n) if n >= 0 => Ok(n),
                _ => Err(self.err("array shape holds a non-integer or a negative size")),
            })
            .collect()
    }

    fn make_array(
        &self,
        dtype: DType,
        shape: Vec<i64>,
        fortran_order: bool,
        data: Vec<u8>,
    ) -> Result<NdArray, PickleError> {
        let mut n: usize = dtype.size();
        for &d in &shape {
            n = usize::try_from(d)
                .ok()
                .and_then(|d| n.checked_mul(d))
                .ok_or_else(|| self.err("array size overflows"))?;
        }
        if n != data.len() {
            return Err(self.err(format!(
                "array of shape {shape:?} ({}) needs {n} bytes, the payload has {}",
                dtype.name(),
                data.len()
            )));
        }
        Ok(NdArray {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }

    fn reduce(&mut self, func: Id, args: Id) -> Result<Obj, PickleError> {
        let g = match self.objs[func] {
            Obj::Global(g) => g,
            _ => return Err(self.err("REDUCE on something that is not a recognised global")),
        };
        let a = self.tuple_of(args)?.to_vec();
        match g {
            Global::Reconstruct => {
                if a.first()
                    .map(|&i| matches!(self.objs[i], Obj::Global(Global::NdArrayType)))
                    != Some(true)
                {
                    return Err(self.err("_reconstruct of something other than numpy.ndarray"));
                }
                Ok(Obj::Array(None))
            }
            Global::DTypeType => {
                let descr = a
                    .first()
                    .and_then(|&i| self.str_of(i))
                    .ok_or_else(|| self.err("dtype without a name"))?;
                Ok(Obj::DType {
                    dtype: DType::parse(descr),
                    descr: descr.to_string(),
                    big_endian: descr.starts_with('>'),
                })
            }
            Global::CodecsEncode => {
                if a.len() != 2 || !matches!(self.str_of(a[1]), Some("latin1" | "latin-1")) {
                    return Err(self.err("_codecs.encode with an encoding other than latin1"));
                }
                if !matches!(
                    self.objs[a[0]],
                    Obj::Str(_) | Obj::Latin1(_) | Obj::Consumed
                ) {
                    return Err(self.err("_codecs.encode of a non-string"));
                }
                Ok(Obj::Bytes(self.payload(a[0])?))
            }
            Global::OrderedDict => {
                if !a.is_empty() {
                    return Err(self.err("OrderedDict with constructor arguments"));
                }
                Ok(Obj::Dict(Vec::new()))
            }
            Global::Scalar => {
                if a.len() != 2 {
                    return Err(self.err("numpy scalar needs (dtype, bytes)"));
                }
                let dtype = self.dtype_of(a[0])?;
                let b = self.payload(a[1])?;
                let arr = self.make_array(dtype, vec![], false, b)?;
                Ok(scalar_value(&arr))
            }
            Global::FromBuffer => {
                if a.len() != 4 {
                    return Err(self.err("_frombuffer needs (buffer, dtype, shape, order)"));
                }
                let data = self.payload(a[0])?;
                let dtype = self.dtype_of(a[1])?;
                let shape = self.shape_of(a[2])?;
                let fortran = self.str_of(a[3]) == Some("F");
                Ok(Obj::Array(Some(
                    self.make_array(dtype, shape, fortran, data)?,
                )))
            }
            Global::NdArrayType => Err(self.err("numpy.ndarray called directly")),
        }
    }

    fn build(&mut self, target: Id, state: Id) -> Result<(), PickleError> {
        match &self.objs[target] {
            Obj::Array(None) => {
                let s = self.tuple_of(state)?.to_vec();
                if s.len() != 5 {
                    return Err(
                        self.err("ndarray state is not (version, shape, dtype, fortran, data)")
                    );
                }
                let shape = self.shape_of(s[1])?;
                let dtype = self.dtype_of(s[2])?;
                let fortran = matches!(self.objs[s[3]], Obj::Bool(true) | Obj::Int(1));
                let data = self.payload(s[4])?;
                let arr = self.make_array(dtype, shape, fortran, data)?;
                self.objs[target] = Obj::Array(Some(arr));
                Ok(())
            }
            Obj::DType { .. } => {
                // state = (version, byteorder, subarray, names, fields, elsize, alignment, flags)
                let s = self.tuple_of(state)?.to_vec();
                let order = s
                    .get(1)
                    .and_then(|&i| self.str_of(i))
                    .unwrap_or("|")
                    .to_string();
                let has_fields = s
                    .get(3)
                    .is_some_and(|&i| !matches!(self.objs[i], Obj::None));
                if let Obj::DType {
                    big_endian, dtype, ..
                } = &mut self.objs[target]
                {
                    *big_endian = order == ">";
                    if has_fields {
                        *dtype = None;
                    }
                }
                Ok(())
            }
            // OrderedDict attributes (detectron2's `_metadata`): not needed.
            Obj::Dict(_) => Ok(()),
            _ => Err(self.err("BUILD on an object this reader does not construct")),
        }
    }

    fn set_items(&mut self, dict: Id, items: &[Id]) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let pairs: Vec<(Id, Id)> = items.chunks(2).map(|c| (c[0], c[1])).collect();
        match &mut self.objs[dict] {
            Obj::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM on a non-dict")),
        }
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(self.err(format!(
                            "pickle protocol {proto} is not supported (2 to 5 are)"
                        )));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => {
                    self.push(Obj::Dict(Vec::new()));
                }
                b']' => {
                    self.push(Obj::List(Vec::new()));
                }
                b')' => {
                    self.push(Obj::Tuple(Vec::new()));
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
                b'J' | b'K' | b'M' | 0x8a | b'G' | b'X' | 0x8c | 0x8d | b'T' | b'U' | b'B'
                | b'C' | 0x8e | 0x96 => self.scalar(op, at)?,
                _ => self.structure(op, at)?,
            }
        }
    }

    /// Opcodes that push one number, string or byte string read from the stream.
    fn scalar(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
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
            0x8a => {
                let n = self.u8()? as usize;
                if n > 8 {
                    return Err(self.err("integer wider than 64 bits"));
                }
                let b = self.take(n)?;
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n); // two's complement of an n-byte number
                }
                self.push(Obj::Int(v));
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let _ = f64::from_be_bytes(a);
                self.push(Obj::Float);
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
                    self.u32()? as usize
                } else {
                    self.u8()? as usize
                };
                let b = self.take(n)?;
                // Python 2 `str`, decoded as latin-1 (what `encoding="latin1"` does).
                self.push(Obj::Str(b.iter().map(|&c| c as char).collect()));
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

    /// Opcodes that build containers, call globals, or use the memo.
    fn structure(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let g = self.global(module, name)?;
                self.push(Obj::Global(g));
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
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => self.u8()? as u32,
                    b'r' => self.u32()?,
                    _ => self.memo.len() as u32,
                };
                let top = self.top()?;
                self.memo.insert(key, top);
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    self.u8()? as u32
                } else {
                    self.u32()?
                };
                let id = *self
                    .memo
                    .get(&key)
                    .ok_or_else(|| self.err(format!("memo {key} was never stored")))?;
                self.stack.push(id);
            }
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
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                let o = self.reduce(func, args)?;
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
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let l = self.top()?;
                match &mut self.objs[l] {
                    Obj::List(v) => v.extend(items),
                    _ => return Err(self.err("APPEND on a non-list")),
                }
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

fn scalar_value(a: &NdArray) -> Obj {
    let b = &a.data;
    match a.dtype {
        DType::F64 | DType::F32 => Obj::Float,
        DType::I64 => Obj::Int(i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))),
        DType::I32 => Obj::Int(i32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])) as i64),
        DType::Bool => Obj::Bool(b[0] != 0),
        _ => Obj::None,
    }
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
    let mut vm = Vm {
        data: bytes,
        pos: 0,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
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
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/model/tiny_d2.pkl"
        ))
        .unwrap()
    }

    #[test]
    fn reads_the_protocol_2_fixture() {
        let sd = read_state_dict(&fixture()).unwrap();
        assert_eq!(sd.other_keys, vec!["__author__", "matching_heuristics"]);
        let (_, a) = sd
            .tensors
            .iter()
            .find(|(n, _)| n == "backbone.patch_embed.proj.weight")
            .unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (DType::F32, vec![16, 3, 4, 4]));
        let (_, idx) = sd
            .tensors
            .iter()
            .find(|(n, _)| n.ends_with("relative_position_index"))
            .unwrap();
        assert_eq!((idx.dtype, idx.shape.clone()), (DType::I64, vec![16, 16]));
    }

    /// Protocols 4 and 5 (FRAME, MEMOIZE, STACK_GLOBAL, OrderedDict, `_frombuffer` in protocol 5,
    /// a Fortran-ordered array, int64, a numpy scalar entry beside the state dict).
    #[test]
    fn reads_protocols_4_and_5() {
        for proto in [4, 5] {
            let path = format!(
                "{}/tests/fixtures/model/small_proto{proto}.pkl",
                env!("CARGO_MANIFEST_DIR")
            );
            let sd = read_state_dict(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(sd.other_keys, vec!["__author__", "iteration"]);
            let names: Vec<&str> = sd.tensors.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["a", "f", "i"]);
            let f32s = |a: &NdArray| -> Vec<f32> {
                a.data
                    .chunks(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            let (a, f, i) = (&sd.tensors[0].1, &sd.tensors[1].1, &sd.tensors[2].1);
            assert_eq!((a.shape.clone(), a.fortran_order), (vec![2, 3], false));
            assert_eq!(f32s(a), [0., 1., 2., 3., 4., 5.]);
            // Column-major bytes of [[0, 1, 2], [3, 4, 5]].
            assert_eq!(
                (f.shape.clone(), f.fortran_order),
                (vec![2, 3], true),
                "protocol {proto}"
            );
            assert_eq!(f32s(f), [0., 3., 1., 4., 2., 5.]);
            assert_eq!(i.dtype, DType::I64);
            let ints: Vec<i64> = i
                .data
                .chunks(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(ints, [1, -2, 3, 4]);
        }
    }

    /// Protocol 2 as the zoo writes it, by hand: `{"model": {"w": array([1., 2.], f4)}}`.
    fn tiny_pickle() -> Vec<u8> {
        let push_str = |p: &mut Vec<u8>, s: &str| {
            p.push(b'X');
            p.extend((s.len() as u32).to_le_bytes());
            p.extend(s.as_bytes());
        };
        // PROTO 2, EMPTY_DICT, BINPUT 0
        let mut p = vec![0x80, 2, b'}', b'q', 0];
        push_str(&mut p, "model");
        p.push(b'}');
        push_str(&mut p, "w");
        p.extend(b"cnumpy.core.multiarray\n_reconstruct\n");
        p.extend(b"cnumpy\nndarray\n");
        // (ndarray, (0,), 'b') -> REDUCE
        p.extend([b'K', 0, 0x85, b'U', 1, b'b', 0x87, b'R']);
        p.push(b'(');
        p.extend([b'K', 1, b'K', 2, 0x85]);
        p.extend(b"cnumpy\ndtype\n");
        push_str(&mut p, "f4");
        p.extend([0x89, 0x88, 0x87, b'R']);
        p.push(b'(');
        p.extend([b'K', 3]);
        push_str(&mut p, "<");
        p.extend([b'N', b'N', b'N', b'J']);
        p.extend((-1i32).to_le_bytes());
        p.push(b'J');
        p.extend((-1i32).to_le_bytes());
        p.extend([b'K', 0, b't', b'b']);
        p.push(0x89);
        let mut payload = Vec::new();
        payload.extend(1f32.to_le_bytes());
        payload.extend(2f32.to_le_bytes());
        p.extend(b"c_codecs\nencode\n");
        let latin: String = payload.iter().map(|&c| c as char).collect();
        push_str(&mut p, &latin);
        push_str(&mut p, "latin1");
        p.extend([0x86, b'R', b't', b'b', b's', b's', b'.']);
        p
    }

    #[test]
    fn reads_a_hand_written_protocol_2_array() {
        let sd = read_state_dict(&tiny_pickle()).unwrap();
        assert_eq!(sd.tensors.len(), 1);
        let (name, a) = &sd.tensors[0];
        assert_eq!(name, "w");
        assert_eq!(a.shape, vec![2]);
        assert_eq!(a.data, [1f32.to_le_bytes(), 2f32.to_le_bytes()].concat());
    }

    #[test]
    fn latin1_fast_path_agrees_with_the_text_path() {
        let all: String = (0u32..=255).filter_map(char::from_u32).collect();
        assert_eq!(utf8_to_latin1(all.as_bytes()), latin1(&all));
        assert_eq!(utf8_to_latin1("Ā".as_bytes()), None); // U+0100 is not latin-1
        assert_eq!(utf8_to_latin1(&[0xC3]), None); // cut in the middle of a character
        assert_eq!(utf8_to_latin1(&[0xC0, 0x80]), None); // overlong encoding
    }

    #[test]
    fn refuses_foreign_globals() {
        // pickle.dumps(os.system) style: GLOBAL 'posix system' then REDUCE.
        let mut p = vec![0x80, 2];
        p.extend(b"cposix\nsystem\n");
        p.extend([b'X', 4, 0, 0, 0]);
        p.extend(b"echo");
        p.extend([0x85, b'R', b'.']);
        let e = read_state_dict(&p).unwrap_err();
        assert_eq!(
            e,
            PickleError::ForeignGlobal {
                module: "posix".into(),
                name: "system".into()
            }
        );
        assert!(e.to_string().contains("posix.system"));
        let mut p = vec![0x80, 4, 0x8c, 2];
        p.extend(b"os");
        p.extend([0x8c, 6]);
        p.extend(b"system");
        p.extend([0x93, b'.']);
        assert!(matches!(
            read_state_dict(&p),
            Err(PickleError::ForeignGlobal { .. })
        ));
    }

    #[test]
    fn truncated_files_are_reported() {
        let data = fixture();
        for cut in [0, 1, 2, 100, data.len() / 2, data.len() - 1] {
            let e = read_state_dict(&data[..cut]).unwrap_err();
            assert!(
                matches!(
                    e,
                    PickleError::Truncated { .. } | PickleError::Invalid { .. }
                ),
                "cut {cut}: {e}"
            );
        }
    }

    #[test]
    fn huge_lengths_do_not_allocate() {
        // BINUNICODE8 claiming 2^62 bytes, BINBYTES claiming 4 GiB.
        let mut p = vec![0x80, 4, 0x8d];
        p.extend((1u64 << 62).to_le_bytes());
        assert!(matches!(
            read_state_dict(&p),
            Err(PickleError::Truncated { .. })
        ));
        let p = vec![0x80, 3, b'B', 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            read_state_dict(&p),
            Err(PickleError::Truncated { .. })
        ));
    }

    /// A bounded property test: thousands of mutations of the real fixture (byte flips, overwritten
    /// length fields, cuts, splices) must each give a result or an error, never a panic, and never
    /// an array larger than the input.
    #[test]
    fn fuzz_mutations_never_panic() {
        let base = tiny_pickle();
        let big = fixture();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let p5 = std::fs::read(format!(
            "{}/tests/fixtures/model/small_proto5.pkl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for round in 0..3000 {
            // Mostly small pickles (every opcode path), sometimes the whole 3 MB fixture.
            let src = match round % 20 {
                0 => &big[..],
                1..=9 => &p5[..],
                _ => &base[..],
            };
            let mut d = src.to_vec();
            let edits = 1 + next() % 4;
            for _ in 0..edits {
                let i = (next() as usize) % d.len().max(1);
                match next() % 5 {
                    0 if !d.is_empty() => d[i] ^= 1 << (next() % 8),
                    1 if !d.is_empty() => d[i] = next() as u8,
                    2 => d.truncate(i),
                    3 if i + 4 <= d.len() => {
                        d[i..i + 4].copy_from_slice(&(next() as u32).to_le_bytes())
                    }
                    _ => {
                        let j = (next() as usize) % src.len();
                        let k = (j + (next() as usize) % 16).min(src.len());
                        let at = i.min(d.len());
                        d.splice(at..at, src[j..k].iter().copied());
                    }
                }
            }
            if let Ok(sd) = read_state_dict(&d) {
                let total: usize = sd.tensors.iter().map(|(_, a)| a.data.len()).sum();
                assert!(
                    total <= d.len(),
                    "round {round}: {total} bytes of arrays from {} input bytes",
                    d.len()
                );
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Arbitrary bytes after a protocol header: a state dict or an error, never a panic.
            #[test]
            fn arbitrary_bytes_never_panic(
                proto in 0u8..6,
                body in proptest::collection::vec(any::<u8>(), 0..512),
            ) {
                let mut b = vec![0x80, proto];
                b.extend(body);
                let _ = read_state_dict(&b);
            }

            /// The real small pickle with edits anywhere (opcodes, lengths, memo indices).
            #[test]
            fn edited_pickles_never_panic_nor_grow(
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                cut in any::<usize>(),
            ) {
                let mut b = tiny_pickle();
                for (at, v) in edits {
                    let i = at % b.len();
                    b[i] = v;
                }
                b.truncate(b.len() - cut % (b.len() / 4 + 1));
                if let Ok(sd) = read_state_dict(&b) {
                    let total: usize = sd.tensors.iter().map(|(_, a)| a.data.len()).sum();
                    prop_assert!(total <= b.len());
                }
            }
        }
    }
}
