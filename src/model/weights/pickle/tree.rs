//! The whole decoded tree of a pickle, for metadata, small files and the differential tests
//! against Python's own decoding.

use super::{Id, NdArray, Obj, PickleError, Vm};

/// A decoded pickle, as Python's unpickler builds it (numpy scalars and arrays included).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, in decimal.
    BigInt(String),
    Float(f64),
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// `dict` or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    Array(NdArray),
    /// A numpy scalar (`np.float32(1.5)`), as a 0-d array.
    Scalar(NdArray),
}

impl Vm<'_> {
    /// The tree under `id`, copied out of the arena. Each node and each copied byte counts
    /// against `budget`, so memo references that repeat a subtree cannot blow up memory; a cycle
    /// (a list holding itself) is refused.
    fn value(
        &self,
        id: Id,
        on_path: &mut Vec<Id>,
        budget: &mut usize,
    ) -> Result<Value, PickleError> {
        let spend = |budget: &mut usize, n: usize| -> Result<(), PickleError> {
            *budget = budget.checked_sub(n.max(1)).ok_or_else(|| {
                self.err("the decoded tree repeats shared parts more than the file's size allows")
            })?;
            Ok(())
        };
        spend(budget, 1)?;
        if on_path.contains(&id) {
            return Err(self.err("the pickle holds a reference cycle"));
        }
        if on_path.len() >= MAX_DEPTH {
            return Err(self.err(format!("the pickle nests deeper than {MAX_DEPTH} levels")));
        }
        on_path.push(id);
        let many = |ids: &[Id], on_path: &mut Vec<Id>, budget: &mut usize| {
            ids.iter()
                .map(|&i| self.value(i, on_path, budget))
                .collect::<Result<Vec<_>, _>>()
        };
        let v = match &self.objs[id] {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(n) => Value::Int(*n),
            Obj::BigInt(s) => Value::BigInt(s.clone()),
            Obj::Float(f) => Value::Float(*f),
            Obj::Str(s) => {
                spend(budget, s.len())?;
                Value::Str(s.clone())
            }
            Obj::Latin1(b) => {
                spend(budget, b.len())?;
                Value::Str(b.iter().map(|&c| c as char).collect())
            }
            Obj::Bytes(b) => {
                spend(budget, b.len())?;
                Value::Bytes(b.clone())
            }
            Obj::Tuple(v) => Value::Tuple(many(v, on_path, budget)?),
            Obj::List(v) => Value::List(many(v, on_path, budget)?),
            Obj::Set(v) => Value::Set(many(v, on_path, budget)?),
            Obj::FrozenSet(v) => Value::FrozenSet(many(v, on_path, budget)?),
            Obj::Dict(kv) => Value::Dict(
                kv.iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.value(k, on_path, budget)?,
                            self.value(v, on_path, budget)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, PickleError>>()?,
            ),
            Obj::Array(Some(a)) => {
                spend(budget, a.data.len())?;
                Value::Array(a.clone())
            }
            Obj::Scalar(a) => Value::Scalar(a.clone()),
            Obj::Array(None) => return Err(self.err("an array without data")),
            Obj::Global(_) => return Err(self.err("a Python class or function as a value")),
            Obj::DType { descr, .. } => {
                return Err(self.err(format!("a numpy dtype (`{descr}`) as a value")))
            }
            Obj::Consumed => return Err(self.err("a large payload is used twice")),
        };
        on_path.pop();
        Ok(v)
    }
}

/// Deepest nesting [`read_value`] follows (data files nest a few levels).
const MAX_DEPTH: usize = 256;

/// Decodes a whole pickle into a tree, as `pickle.loads(data, encoding="latin1")` would (with
/// the globals above only). For metadata and small files: arrays are copied into the tree, so a
/// checkpoint goes through [`read_state_dict`] instead.
pub fn read_value(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut vm = Vm::new(bytes);
    let root = vm.run()?;
    let mut budget = 2 * bytes.len() + 4096;
    vm.value(root, &mut Vec::new(), &mut budget)
}
