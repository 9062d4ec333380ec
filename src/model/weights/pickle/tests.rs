//! Tests of the pickle reader.

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

        /// Text-protocol soup (opcodes, digits, quotes, backslashes, newlines), no header:
        /// a value or an error, never a panic.
        #[test]
        fn text_opcode_soup_never_panics(
            body in proptest::collection::vec(
                proptest::sample::select(b"IpgLVSF(tldsa0125.-'\"\\\nuUx\x80\xff".to_vec()),
                0..256,
            ),
        ) {
            let _ = read_value(&body);
            let _ = read_state_dict(&body);
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

// ---------------------------------------------------------------------------------------------
// Every protocol and opcode family against Python's own decoding.
//
// Fixtures in tests/fixtures/pickle, made with CPython 3.11 and numpy 1.26.4 / 2.2.6:
//     PYTHONPATH=<numpy 1> python3 scripts/make_pickle_fixtures.py tests/fixtures/pickle
//     PYTHONPATH=<numpy 2> python3 scripts/make_pickle_fixtures.py tests/fixtures/pickle
// Each NAME.json is `pickle.loads(NAME.pkl, encoding="latin1")` in the script's JSON conventions.

use serde_json::Value as Json;

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle")
}

/// `(name, pickle bytes, Python's tree)` of every fixture, sorted by name.
fn fixtures() -> Vec<(String, Vec<u8>, Json)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".pkl").map(str::to_string)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let d = fixture_dir();
            let pkl = std::fs::read(d.join(format!("{n}.pkl"))).unwrap();
            let json = std::fs::read_to_string(d.join(format!("{n}.json"))).unwrap();
            (n, pkl, serde_json::from_str(&json).unwrap())
        })
        .collect()
}

/// One element of an array, as Python's `tolist()` gives it.
#[derive(Debug, PartialEq)]
enum Elem {
    F(f64),
    I(i64),
    B(bool),
}

/// The elements of `a` in C order, whatever its memory order.
fn c_order_elements(a: &NdArray) -> Vec<Elem> {
    let size = a.dtype.size();
    let elem = |k: usize| {
        let b = &a.data[k * size..(k + 1) * size];
        match a.dtype {
            DType::F16 => Elem::F(half::f16::from_le_bytes([b[0], b[1]]).to_f64()),
            DType::F32 => Elem::F(f32::from_le_bytes(b.try_into().unwrap()) as f64),
            DType::F64 => Elem::F(f64::from_le_bytes(b.try_into().unwrap())),
            DType::I8 => Elem::I(b[0] as i8 as i64),
            DType::I16 => Elem::I(i16::from_le_bytes(b.try_into().unwrap()) as i64),
            DType::I32 => Elem::I(i32::from_le_bytes(b.try_into().unwrap()) as i64),
            DType::I64 => Elem::I(i64::from_le_bytes(b.try_into().unwrap())),
            DType::U8 => Elem::I(b[0] as i64),
            DType::Bool => Elem::B(b[0] != 0),
        }
    };
    let shape: Vec<usize> = a.shape.iter().map(|&d| d as usize).collect();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        // Linear position of the C-order index `idx` in the stored order.
        let mut k = 0;
        if a.fortran_order {
            for d in (0..shape.len()).rev() {
                k = k * shape[d] + idx[d];
            }
        } else {
            for d in 0..shape.len() {
                k = k * shape[d] + idx[d];
            }
        }
        out.push(elem(k));
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn tagged<'j>(j: &'j Json, tag: &str) -> Option<&'j Json> {
    j.as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(tag))
}

fn check_float(f: f64, j: &Json, path: &str) -> Result<(), String> {
    let want: f64 = tagged(j, "float")
        .and_then(Json::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{path}: got float {f}, Python has {j}"))?;
    if f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()) {
        Ok(())
    } else {
        Err(format!("{path}: got {f:e}, Python has {want:e}"))
    }
}

fn check_array(a: &NdArray, j: &Json, path: &str) -> Result<(), String> {
    if j["dtype"] != a.dtype.name() {
        return Err(format!(
            "{path}: dtype {} vs {}",
            a.dtype.name(),
            j["dtype"]
        ));
    }
    let shape: Vec<i64> = serde_json::from_value(j["shape"].clone()).unwrap();
    if shape != a.shape {
        return Err(format!("{path}: shape {:?} vs {shape:?}", a.shape));
    }
    let want = j["values"].as_array().unwrap();
    let got = c_order_elements(a);
    if got.len() != want.len() {
        return Err(format!("{path}: {} values vs {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let p = format!("{path}[{i}]");
        match g {
            Elem::F(f) => check_float(*f, w, &p)?,
            Elem::I(n) if w.as_i64() == Some(*n) => {}
            Elem::B(b) if w.as_bool() == Some(*b) => {}
            _ => return Err(format!("{p}: got {g:?}, Python has {w}")),
        }
    }
    Ok(())
}

fn check_items(got: &[Value], want: &Json, path: &str) -> Result<(), String> {
    let want = want
        .as_array()
        .ok_or_else(|| format!("{path}: Python has {want}"))?;
    if got.len() != want.len() {
        return Err(format!("{path}: {} items vs {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        check(g, w, &format!("{path}[{i}]"))?;
    }
    Ok(())
}

/// Sets in any order: every element Python has matches a distinct decoded one.
fn check_set(got: &[Value], want: &Json, path: &str) -> Result<(), String> {
    let want = want.as_array().unwrap();
    let mut used = vec![false; got.len()];
    if got.len() != want.len() {
        return Err(format!("{path}: {} items vs {}", got.len(), want.len()));
    }
    for w in want {
        let hit = (0..got.len()).find(|&i| !used[i] && check(&got[i], w, path).is_ok());
        match hit {
            Some(i) => used[i] = true,
            None => return Err(format!("{path}: no element matches {w}")),
        }
    }
    Ok(())
}

/// The decoded tree against Python's, with the path of the first difference.
fn check(v: &Value, j: &Json, path: &str) -> Result<(), String> {
    let mismatch = || Err(format!("{path}: got {v:?}, Python has {j}"));
    match v {
        Value::None if j.is_null() => Ok(()),
        Value::Bool(b) if j.as_bool() == Some(*b) => Ok(()),
        Value::Int(n) if j.as_i64() == Some(*n) => Ok(()),
        Value::BigInt(s) if tagged(j, "int").and_then(Json::as_str) == Some(s) => Ok(()),
        Value::Float(f) => check_float(*f, j, path),
        Value::Str(s) if j.as_str() == Some(s) => Ok(()),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            match tagged(j, "bytes").and_then(Json::as_str) {
                Some(h) if h == hex => Ok(()),
                _ => mismatch(),
            }
        }
        Value::List(items) if j.is_array() => check_items(items, j, path),
        Value::Tuple(items) => match tagged(j, "tuple") {
            Some(w) => check_items(items, w, path),
            None => mismatch(),
        },
        Value::Dict(kv) => {
            let Some(w) = tagged(j, "dict").and_then(Json::as_array) else {
                return mismatch();
            };
            if w.len() != kv.len() {
                return Err(format!("{path}: {} entries vs {}", kv.len(), w.len()));
            }
            for (i, ((k, v), pair)) in kv.iter().zip(w).enumerate() {
                check(k, &pair[0], &format!("{path}.key{i}"))?;
                let name = match k {
                    Value::Str(s) => s.clone(),
                    _ => format!("value{i}"),
                };
                check(v, &pair[1], &format!("{path}.{name}"))?;
            }
            Ok(())
        }
        Value::Set(items) => match tagged(j, "set") {
            Some(w) => check_set(items, w, path),
            None => mismatch(),
        },
        Value::FrozenSet(items) => match tagged(j, "frozenset") {
            Some(w) => check_set(items, w, path),
            None => mismatch(),
        },
        Value::Array(a) => match tagged(j, "array") {
            Some(w) => check_array(a, w, path),
            None => mismatch(),
        },
        Value::Scalar(a) => {
            let Some(w) = tagged(j, "scalar") else {
                return mismatch();
            };
            let as_array = serde_json::json!({
                "dtype": w["dtype"], "shape": [], "values": [w["value"]]
            });
            check_array(a, &as_array, path)
        }
        _ => mismatch(),
    }
}

#[test]
fn every_fixture_decodes_to_pythons_tree() {
    let all = fixtures();
    // 6 protocols x 2 numpy majors + 3 Python-2 style zoo files, 6 families x 6 protocols,
    // 2 Python-2 style families x 3 protocols, and the stack opcodes.
    assert_eq!(
        all.len(),
        12 + 3 + 36 + 6 + 1,
        "fixtures in {:?}",
        fixture_dir()
    );
    let failures: Vec<String> = all
        .iter()
        .filter_map(|(name, pkl, json)| match read_value(pkl) {
            Ok(v) => check(&v, json, name).err(),
            Err(e) => Some(format!("{name}: {e}")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The model-zoo layout in every protocol (0–5), numpy 1 and 2, and Python 2's forms: the state
/// dict holds every array of Python's `model` entry, in order, with the same values.
#[test]
fn every_protocol_reads_as_a_state_dict() {
    let mut seen = Vec::new();
    for (name, pkl, json) in fixtures() {
        if !name.contains("zoo_") {
            continue;
        }
        let sd = read_state_dict(&pkl).unwrap_or_else(|e| panic!("{name}: {e}"));
        let top = json["dict"].as_array().unwrap();
        let model = top.iter().find(|kv| kv[0] == "model").unwrap()[1]["dict"]
            .as_array()
            .unwrap();
        let want_names: Vec<&str> = model.iter().map(|kv| kv[0].as_str().unwrap()).collect();
        let names: Vec<&str> = sd.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, want_names, "{name}");
        for ((n, a), kv) in sd.tensors.iter().zip(model) {
            check_array(a, &kv[1]["array"], &format!("{name}: {n}")).unwrap();
        }
        let others: Vec<&str> = top
            .iter()
            .map(|kv| kv[0].as_str().unwrap())
            .filter(|&k| k != "model")
            .collect();
        assert_eq!(sd.other_keys, others, "{name}");
        seen.push(name);
    }
    assert_eq!(seen.len(), 15, "{seen:?}");
}

#[test]
fn text_integers_follow_pythons_int() {
    use super::text::{int_from_le, parse_int, PyInt::*};
    let ok = [
        ("00", 0),
        ("0", 0),
        ("-0", 0),
        ("+3", 3),
        (" 5 ", 5),
        ("1_000", 1000),
        ("0x1f", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("-9223372036854775808", i64::MIN),
        ("9223372036854775807", i64::MAX),
    ];
    for (s, v) in ok {
        assert_eq!(parse_int(s.as_bytes()), Some(Small(v)), "{s}");
    }
    for s in [
        "01", "007", "08", "1__0", "_1", "1_", "", "-", "0x", "1.0", "12L",
    ] {
        assert_eq!(parse_int(s.as_bytes()), None, "{s:?}");
    }
    assert_eq!(
        parse_int(b"9223372036854775808"),
        Some(Big("9223372036854775808".into()))
    );
    assert_eq!(
        parse_int(b"-0x10000000000000000"),
        Some(Big("-18446744073709551616".into()))
    );
    assert_eq!(parse_int("9".repeat(5000).as_bytes()), None); // beyond the length limit
    assert_eq!(int_from_le(&[]), Some(Small(0)));
    assert_eq!(int_from_le(&[0xff]), Some(Small(-1)));
    assert_eq!(int_from_le(&[0x00, 0x80]), Some(Small(-32768)));
    assert_eq!(int_from_le(&[0xff, 0x00]), Some(Small(255)));
    let mut two64 = vec![0u8; 8];
    two64.push(1);
    assert_eq!(
        int_from_le(&two64),
        Some(Big("18446744073709551616".into()))
    );
    two64[8] = 0xff;
    assert_eq!(
        int_from_le(&two64),
        Some(Big("-18446744073709551616".into()))
    );
    // -2**63 in 9 bytes (LONG1 as Python 2 wrote it) still fits.
    assert_eq!(
        int_from_le(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff]),
        Some(Small(i64::MIN))
    );
}

#[test]
fn text_strings_follow_pythons_codecs() {
    use super::text::{escape_decode, raw_unicode_escape, unquote_string, Text};
    // What CPython 3.11's `codecs.escape_decode` gives.
    assert_eq!(escape_decode(br"\q").unwrap(), br"\q");
    assert_eq!(escape_decode(br"\777").unwrap(), [0xff]);
    assert_eq!(escape_decode(br"\1").unwrap(), [1]);
    assert_eq!(escape_decode(br"\08").unwrap(), [0, b'8']);
    assert_eq!(escape_decode(b"\\\nx").unwrap(), b"x");
    assert_eq!(
        escape_decode(br#"\a\b\t\n\v\f\r\\\'\"\x7F"#).unwrap(),
        b"\x07\x08\t\n\x0b\x0c\r\\'\"\x7f"
    );
    assert!(escape_decode(br"\x4").is_err());
    assert!(escape_decode(br"a\").is_err());
    assert_eq!(unquote_string(br#""it's""#).unwrap(), b"it's");
    assert!(unquote_string(b"'x").is_err());
    assert!(unquote_string(b"'").is_err());
    // What `raw-unicode-escape` gives: escapes only after an odd run of backslashes.
    let narrow = |s: &[u8]| Text::Latin1(s.to_vec());
    assert_eq!(raw_unicode_escape(br"\u0041").unwrap(), narrow(b"A"));
    assert_eq!(
        raw_unicode_escape(br"\\u0041").unwrap(),
        narrow(br"\\u0041")
    );
    assert_eq!(raw_unicode_escape(br"\\\u0041").unwrap(), narrow(br"\\A"));
    assert_eq!(raw_unicode_escape(br"a\").unwrap(), narrow(br"a\"));
    assert_eq!(raw_unicode_escape(br"\x41").unwrap(), narrow(br"\x41"));
    assert_eq!(
        raw_unicode_escape(b"\xe9\\u00ff").unwrap(),
        narrow(b"\xe9\xff")
    );
    assert_eq!(
        raw_unicode_escape(b"\xe9\\u0100\\U0001F600").unwrap(),
        Text::Wide("é\u{100}😀".into())
    );
    assert!(raw_unicode_escape(br"\u00").is_err());
    assert!(raw_unicode_escape(br"\U00110000").is_err());
    // Python keeps a lone surrogate; a Rust string cannot, so it is an error, not a panic.
    assert!(raw_unicode_escape(br"\ud800").is_err());
}

#[test]
fn reference_cycles_are_refused() {
    // `l = []; l.append(l)` in protocol 2, and `l = []; t = (l,); l.append(t)` in protocols 2
    // (POP_MARK) and 0 (POP), as CPython writes them.
    for p in [
        &b"\x80\x02]q\x00h\x00a."[..],
        b"\x80\x02]q\x00h\x00\x85q\x01a0h\x01.",
        b"((lp0\n(g0\ntp1\na00g1\n.",
    ] {
        let e = read_value(p).unwrap_err();
        assert!(e.to_string().contains("reference cycle"), "{e}");
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let n = 200_000;
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    let e = read_value(&p).unwrap_err();
    assert!(e.to_string().contains("nests deeper"), "{e}");
    assert!(read_state_dict(&p).is_err());
}

#[test]
fn repeated_shared_subtrees_are_bounded() {
    // Each level is a list of ten references to the one below: 10^40 nodes from 1 KB.
    let mut p = vec![0x80, 4, b']', 0x94];
    for level in 0u8..40 {
        p.push(b'(');
        for _ in 0..10 {
            p.extend([b'h', level]);
        }
        p.extend([b'l', 0x94]);
    }
    p.push(b'.');
    let e = read_value(&p).unwrap_err();
    assert!(e.to_string().contains("shared parts"), "{e}");
}

#[test]
fn memoised_payloads_cannot_multiply_memory() {
    // One 4000-character string turned into bytes 5000 times (20 MB from a 45 KB file).
    let mut p = vec![0x80, 2];
    p.extend(b"c_codecs\nencode\nq\x00");
    p.extend([b'X']);
    p.extend(4000u32.to_le_bytes());
    p.extend([b'a'; 4000]);
    p.extend([b'q', 1, b'X', 6, 0, 0, 0]);
    p.extend(b"latin1q\x02]");
    for _ in 0..5000 {
        p.extend([b'h', 0, b'h', 1, b'h', 2, 0x86, b'R', b'a']);
    }
    p.push(b'.');
    let e = read_value(&p).unwrap_err();
    assert!(e.to_string().contains("shared payloads"), "{e}");
}

#[test]
fn huge_integers_are_refused_quickly() {
    let mut p = b"I".to_vec();
    p.extend(std::iter::repeat_n(b'7', 1 << 20));
    p.extend(b"\n.");
    assert!(matches!(read_value(&p), Err(PickleError::Invalid { .. })));
    let mut p = vec![0x80, 2, 0x8b];
    p.extend((1u32 << 20).to_le_bytes());
    p.extend(vec![0x55; 1 << 20]);
    p.push(b'.');
    let e = read_value(&p).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

/// Persistent IDs, the extension registry, out-of-band buffers and any global off the list are
/// refused by name, in every spelling (GLOBAL, STACK_GLOBAL, INST, OBJ).
#[test]
fn refuses_what_is_not_data_by_name() {
    let opcode = |p: &[u8], name: &str| {
        let e = read_value(p).unwrap_err();
        assert!(matches!(e, PickleError::Opcode { .. }), "{e}");
        assert!(e.to_string().contains(name), "{e}");
    };
    opcode(b"Pfoo\n.", "(PERSID)");
    opcode(b"\x80\x02X\x03\x00\x00\x00fooQ.", "(BINPERSID)");
    opcode(b"\x80\x02\x82\x01.", "(EXT1)");
    opcode(b"\x80\x02\x83\x01\x00.", "(EXT2)");
    opcode(b"\x80\x05\x97.", "(NEXT_BUFFER)");
    opcode(b"\x80\x02\xff.", "(not a pickle opcode)");
    let foreign = |p: &[u8], global: &str| {
        let e = read_value(p).unwrap_err();
        assert!(matches!(e, PickleError::ForeignGlobal { .. }), "{e}");
        assert!(e.to_string().contains(global), "{e}");
    };
    foreign(b"cos\nsystem\n(Vecho\ntR.", "os.system");
    foreign(b"(Vecho\nios\nsystem\n.", "os.system");
    foreign(b"c__builtin__\neval\n(S'1'\ntR.", "__builtin__.eval");
    foreign(
        b"\x80\x04\x8c\x08builtins\x8c\x07getattr\x93.",
        "builtins.getattr",
    );
    foreign(
        b"\x80\x02ccopy_reg\n_reconstructor\nq\x00.",
        "copy_reg._reconstructor",
    );
    // Allow-listed types called in ways the unpickler would not build data from.
    for p in [
        &b"\x80\x02c__builtin__\nbytes\nK\x05\x85R."[..],
        b"\x80\x02cnumpy\nndarray\n)R.",
        b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.",
        b"\x80\x02(ccollections\nOrderedDict\n]]K\x01aao.",
    ] {
        assert!(
            matches!(read_value(p), Err(PickleError::Invalid { .. })),
            "{p:?}"
        );
    }
}

#[test]
fn every_cut_of_the_text_protocols_is_an_error() {
    for name in [
        "zoo_p0_np2",
        "zoo_p1_np1",
        "py2_zoo_p0_np1",
        "py2_zoo_p1_np1",
    ] {
        let data = std::fs::read(fixture_dir().join(format!("{name}.pkl"))).unwrap();
        // Every cut through the first 4 KiB (every opcode kind), then every 13th byte.
        for cut in (0..data.len()).filter(|&c| c < 4096 || c % 13 == 0) {
            assert!(read_value(&data[..cut]).is_err(), "{name} cut at {cut}");
            assert!(
                read_state_dict(&data[..cut]).is_err(),
                "{name} cut at {cut}"
            );
        }
    }
}

/// Random edits of the text-protocol and Python-2 style fixtures: a result or an error, never a
/// panic, and never more array bytes than the input holds.
#[test]
fn edited_text_pickles_never_panic() {
    let sources: Vec<Vec<u8>> = [
        "zoo_p0_np2",
        "py2_zoo_p0_np1",
        "py2_zoo_p2_np1",
        "zoo_p1_np1",
    ]
    .iter()
    .map(|n| std::fs::read(fixture_dir().join(format!("{n}.pkl"))).unwrap())
    .collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let src = &sources[round % sources.len()];
        let mut d = src.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % d.len().max(1);
            match next() % 4 {
                0 if !d.is_empty() => d[i] = b"\n\\'\"0123456789IpgLV(tsa.-"[next() as usize % 25],
                1 if !d.is_empty() => d[i] = next() as u8,
                2 => d.truncate(i),
                _ => {
                    let j = (next() as usize) % src.len();
                    let k = (j + (next() as usize) % 24).min(src.len());
                    let at = i.min(d.len());
                    d.splice(at..at, src[j..k].iter().copied());
                }
            }
        }
        let _ = read_value(&d);
        if let Ok(sd) = read_state_dict(&d) {
            let total: usize = sd.tensors.iter().map(|(_, a)| a.data.len()).sum();
            assert!(total <= d.len(), "round {round}");
        }
    }
}
