//! NumPy `.npy` (format 1.0, little-endian, C order) for float32 and uint8 arrays: the Fishyscapes output
//! format, and the exchange format of the benchmarks.

use std::io::Write;
use std::path::Path;

/// Writes a float32 array of `shape` atomically.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> std::io::Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(path, "<f4", &bytes, data.len(), shape)
}

/// Writes a uint8 array of `shape` atomically.
pub fn write_u8(path: &Path, data: &[u8], shape: &[usize]) -> std::io::Result<()> {
    write_raw(path, "|u1", data, data.len(), shape)
}

fn write_raw(
    path: &Path,
    descr: &str,
    bytes: &[u8],
    n: usize,
    shape: &[usize],
) -> std::io::Result<()> {
    assert_eq!(
        n,
        shape.iter().product::<usize>(),
        "data does not match the shape"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    super::write_atomic(path, |tmp| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        f.write_all(b"\x93NUMPY\x01\x00")?;
        f.write_all(&(header.len() as u16).to_le_bytes())?;
        f.write_all(header.as_bytes())?;
        f.write_all(bytes)?;
        f.flush()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        super::write_f32(&p, &data, &[4, 6]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0, "header padded to 64 bytes");
        let back = crate::eval::predictions::read_npy(&p).unwrap();
        assert_eq!((back.height, back.width, back.scores), (4, 6, data));
    }
}
