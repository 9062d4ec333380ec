//! NumPy `.npy`: writing float32 and uint8 arrays (C order, format 1.0), the Fishyscapes output
//! format and the exchange format of the benchmarks, in files equal to numpy's own `np.save` byte
//! for byte; reading float32 and float16 score maps back for evaluation.

use super::{StoredDtype, StoredScore};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a float32 array of `shape` atomically.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> std::io::Result<()> {
    write(path, "<f4", data.len(), shape, |f| {
        data.iter().try_for_each(|v| f.write_all(&v.to_le_bytes()))
    })
}

/// Writes a uint8 array of `shape` atomically.
pub fn write_u8(path: &Path, data: &[u8], shape: &[usize]) -> std::io::Result<()> {
    write(path, "|u1", data.len(), shape, |f| f.write_all(data))
}

/// numpy's header: the dict as `np.save` formats it, padded with spaces and a newline so that the
/// data starts at a multiple of 64 bytes.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let used = 10 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(' ', used.next_multiple_of(64) - used));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

/// Writes the header, then the `n` values `body` streams into the buffered file.
fn write(
    path: &Path,
    descr: &str,
    n: usize,
    shape: &[usize],
    body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if shape.iter().product::<usize>() != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{n} values do not fill the shape {shape:?}"),
        ));
    }
    super::write_atomic(path, |tmp| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        f.write_all(&header(descr, shape))?;
        body(&mut f)?;
        f.flush()
    })
}

/// A `.npy` file that cannot be read as a score map.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} holds {dtype}, not float32 or float16")]
    Dtype { path: PathBuf, dtype: String },
}

/// Reads a score map (format 1.0–3.0): little-endian float32 or float16 (prediction files may hold
/// either), C order, any shape.
pub fn read_score(path: &Path) -> Result<StoredScore, ReadError> {
    let bad = |m: &str| ReadError::Format {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported .npy version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = header[i + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let end = if rest.starts_with('(') {
            rest.find(')')? + 1
        } else {
            rest.find([',', '}'])?
        };
        Some(rest[..end].trim().to_string())
    };
    let descr = field("descr").ok_or_else(|| bad("header has no descr"))?;
    if field("fortran_order").as_deref() != Some("False") {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape_s = field("shape").ok_or_else(|| bad("header has no shape"))?;
    let shape: Vec<usize> = shape_s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data = &bytes[start + header_len..];
    let n = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad("shape too large"))?;
    let (scores, dtype) = match descr.trim_matches('\'') {
        "<f4" | "=f4" => {
            let raw = n
                .checked_mul(4)
                .and_then(|k| data.get(..k))
                .ok_or_else(|| bad("data shorter than its shape"))?;
            (
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                StoredDtype::Float32,
            )
        }
        "<f2" | "=f2" => {
            let raw = n
                .checked_mul(2)
                .and_then(|k| data.get(..k))
                .ok_or_else(|| bad("data shorter than its shape"))?;
            (
                raw.chunks_exact(2)
                    .map(|c| f32::from(half::f16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                StoredDtype::Float16,
            )
        }
        other => {
            return Err(ReadError::Dtype {
                path: path.to_path_buf(),
                dtype: other.to_string(),
            })
        }
    };
    Ok(StoredScore {
        shape,
        values: scores,
        dtype,
    })
}

#[cfg(test)]
mod tests {
    /// Files written by numpy 1.24.2's `np.save` (`scripts/make_npy_fixtures.py`): the same
    /// values and shape give the same bytes, header padding included.
    #[test]
    fn files_equal_numpys_own_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy");
        let d = tempfile::tempdir().unwrap();
        let cases: [(&str, &[usize]); 5] = [
            ("f32_4x6.npy", &[4, 6]),
            ("f32_2x3x5.npy", &[2, 3, 5]),
            ("f32_1x1x1x1.npy", &[1, 1, 1, 1]),
            ("u8_3.npy", &[3]),
            ("u8_7x5.npy", &[7, 5]),
        ];
        for (name, shape) in cases {
            let want = std::fs::read(dir.join(name)).unwrap();
            let body = &want[10 + u16::from_le_bytes([want[8], want[9]]) as usize..];
            let p = d.path().join(name);
            if name.starts_with("f32") {
                let data: Vec<f32> = body
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                super::write_f32(&p, &data, shape).unwrap();
            } else {
                super::write_u8(&p, body, shape).unwrap();
            }
            assert_eq!(std::fs::read(&p).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        super::write_f32(&p, &data, &[4, 6]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0, "header padded to 64 bytes");
        let back = super::read_score(&p).unwrap();
        assert_eq!((back.shape, back.values), (vec![4, 6], data));
    }

    #[test]
    fn bytes_and_header_as_numpy_writes_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.npy");
        super::write_u8(&p, &[1, 2, 3], &[3]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header = std::str::from_utf8(&bytes[10..bytes.len() - 3]).unwrap();
        assert!(header.contains("'descr': '|u1'"), "{header}");
        assert!(header.contains("'shape': (3,)"), "{header}");
        assert!(header.ends_with('\n'), "{header:?}");
        assert_eq!(&bytes[bytes.len() - 3..], [1, 2, 3]);
    }

    #[test]
    fn data_that_does_not_fill_the_shape_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let e = super::write_f32(&d.path().join("x.npy"), &[0.0; 5], &[2, 3]).unwrap_err();
        assert!(e.to_string().contains("shape"), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
