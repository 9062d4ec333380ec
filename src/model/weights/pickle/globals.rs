//! The allow-list of Python globals and what calling them builds: numpy arrays, dtypes and
//! scalars, `bytes` from latin-1 text, `OrderedDict`, `set` and `frozenset`. Nothing is imported
//! or executed; a call is only ever one of these constructions.

use super::{latin1, DType, Id, NdArray, Obj, PickleError, Vm, MAX_DIMS, RELEASE_AFTER_USE};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Global {
    Reconstruct,
    NdArrayType,
    DTypeType,
    Scalar,
    FromBuffer,
    CodecsEncode,
    OrderedDict,
    Bytes,
    ByteArray,
    Set,
    FrozenSet,
}

impl Vm<'_> {
    pub(super) fn global(&self, module: &str, name: &str) -> Result<Global, PickleError> {
        let core = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
        let numeric = matches!(module, "numpy.core.numeric" | "numpy._core.numeric");
        // Protocols 0–2 name Python 3's builtins by their Python 2 module.
        let builtins = matches!(module, "builtins" | "__builtin__");
        Ok(match (module, name) {
            (_, "_reconstruct") if core => Global::Reconstruct,
            (_, "scalar") if core => Global::Scalar,
            (_, "_frombuffer") if numeric => Global::FromBuffer,
            ("numpy", "ndarray") => Global::NdArrayType,
            ("numpy", "dtype") => Global::DTypeType,
            ("_codecs", "encode") => Global::CodecsEncode,
            ("collections", "OrderedDict") => Global::OrderedDict,
            (_, "bytes") if builtins => Global::Bytes,
            (_, "bytearray") if builtins => Global::ByteArray,
            (_, "set") if builtins => Global::Set,
            (_, "frozenset") if builtins => Global::FrozenSet,
            _ => {
                return Err(PickleError::ForeignGlobal {
                    module: module.into(),
                    name: name.into(),
                })
            }
        })
    }

    /// Bytes of a payload: `bytes`, or a latin-1 `str` (Python 2 pickles, `encoding="latin1"`).
    /// A large payload is moved out (and its object marked consumed) rather than copied; copies
    /// of small ones count against the file's size, so a memoised payload used again and again
    /// cannot multiply memory.
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
        let b = match &self.objs[id] {
            Obj::Bytes(b) | Obj::Latin1(b) => b.clone(),
            Obj::Str(s) => {
                latin1(s).ok_or_else(|| self.err("array payload string is not latin-1"))?
            }
            Obj::Consumed => return Err(self.err("a large payload is used twice")),
            _ => return Err(self.err("array payload is neither bytes nor str")),
        };
        self.copied += b.len();
        if self.copied > self.data.len() {
            return Err(self.err("shared payloads are used more often than the file can hold"));
        }
        Ok(b)
    }

    /// A dtype and whether its bytes are big-endian.
    fn dtype_of(&self, id: Id) -> Result<(DType, bool), PickleError> {
        match &self.objs[id] {
            Obj::DType {
                dtype: Some(d),
                big_endian,
                ..
            } => Ok((*d, *big_endian)),
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
        if items.len() > MAX_DIMS {
            return Err(self.err(format!("array has {} dimensions", items.len())));
        }
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
        (dtype, big_endian): (DType, bool),
        shape: Vec<i64>,
        fortran_order: bool,
        mut data: Vec<u8>,
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
        if big_endian && dtype.size() > 1 {
            // In place: the payload is this array's own copy.
            for e in data.chunks_exact_mut(dtype.size()) {
                e.reverse();
            }
        }
        Ok(NdArray {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }

    /// `func(*args)` for an allow-listed `func` (REDUCE, INST, OBJ, NEWOBJ).
    pub(super) fn call(&mut self, func: Id, a: &[Id]) -> Result<Obj, PickleError> {
        let g = match self.objs[func] {
            Obj::Global(g) => g,
            _ => return Err(self.err("a call of something that is not a recognised global")),
        };
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
            Global::OrderedDict => match a {
                [] => Ok(Obj::Dict(Vec::new())),
                // Python 2's `OrderedDict.__reduce__`: the items as a list of [key, value].
                [items] => Ok(Obj::Dict(self.pairs(*items)?)),
                _ => Err(self.err("OrderedDict with more than one argument")),
            },
            Global::Bytes => match a {
                [] => Ok(Obj::Bytes(Vec::new())),
                _ => Err(self.err("bytes() with arguments")),
            },
            // `bytearray(bytes)`; protocols 0–2 write the bytes through `_codecs.encode`.
            Global::ByteArray => match a {
                [] => Ok(Obj::Bytes(Vec::new())),
                [b] if matches!(self.objs[*b], Obj::Bytes(_)) => Ok(Obj::Bytes(self.payload(*b)?)),
                [s, e]
                    if matches!(self.objs[*s], Obj::Str(_) | Obj::Latin1(_))
                        && matches!(self.str_of(*e), Some("latin1" | "latin-1")) =>
                {
                    Ok(Obj::Bytes(self.payload(*s)?))
                }
                _ => Err(self.err("bytearray() of something other than bytes")),
            },
            Global::Set | Global::FrozenSet => {
                let items = match a {
                    [] => Vec::new(),
                    [i] => match &self.objs[*i] {
                        Obj::List(v) | Obj::Tuple(v) => v.clone(),
                        _ => return Err(self.err("set() of something other than a list")),
                    },
                    _ => return Err(self.err("set() with more than one argument")),
                };
                Ok(if g == Global::Set {
                    Obj::Set(items)
                } else {
                    Obj::FrozenSet(items)
                })
            }
            Global::Scalar => {
                if a.len() != 2 {
                    return Err(self.err("numpy scalar needs (dtype, bytes)"));
                }
                let dtype = self.dtype_of(a[0])?;
                let b = self.payload(a[1])?;
                Ok(Obj::Scalar(self.make_array(dtype, vec![], false, b)?))
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

    /// The `[key, value]` pairs of Python 2's OrderedDict arguments.
    fn pairs(&self, items: Id) -> Result<Vec<(Id, Id)>, PickleError> {
        let list = match &self.objs[items] {
            Obj::List(v) | Obj::Tuple(v) => v,
            _ => return Err(self.err("OrderedDict items are not a list")),
        };
        list.iter()
            .map(|&p| match &self.objs[p] {
                Obj::List(kv) | Obj::Tuple(kv) if kv.len() == 2 => Ok((kv[0], kv[1])),
                _ => Err(self.err("an OrderedDict item is not a [key, value] pair")),
            })
            .collect()
    }

    pub(super) fn build(&mut self, target: Id, state: Id) -> Result<(), PickleError> {
        match &self.objs[target] {
            Obj::Array(None) => {
                let s = self.args_of(state, "ndarray state")?;
                // (version, shape, dtype, fortran, data), or the older form without the version.
                let s = match s.len() {
                    5 => &s[1..],
                    4 => &s[..],
                    _ => {
                        return Err(
                            self.err("ndarray state is not (version, shape, dtype, fortran, data)")
                        )
                    }
                };
                let shape = self.shape_of(s[0])?;
                let dtype = self.dtype_of(s[1])?;
                let fortran = match self.objs[s[2]] {
                    Obj::Bool(b) => b,
                    Obj::Int(n) => n != 0,
                    _ => return Err(self.err("ndarray state's Fortran flag is not a bool")),
                };
                let data = self.payload(s[3])?;
                let arr = self.make_array(dtype, shape, fortran, data)?;
                self.objs[target] = Obj::Array(Some(arr));
                Ok(())
            }
            Obj::DType { .. } => {
                // state = (version, byteorder, subarray, names, fields, elsize, alignment, flags)
                let s = self.args_of(state, "dtype state")?;
                let order = s
                    .get(1)
                    .and_then(|&i| self.str_of(i))
                    .unwrap_or("|")
                    .to_string();
                let has_fields = s
                    .get(3)
                    .is_some_and(|&i| !matches!(self.objs[i], Obj::None));
                let has_subarray = s
                    .get(2)
                    .is_some_and(|&i| !matches!(self.objs[i], Obj::None));
                if let Obj::DType {
                    big_endian, dtype, ..
                } = &mut self.objs[target]
                {
                    *big_endian = order == ">";
                    if has_fields || has_subarray {
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
}
