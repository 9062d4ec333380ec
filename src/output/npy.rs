//! NumPy `.npy` (format 1.0, little-endian, C order) for float32 and uint8 arrays: the Fishyscapes output
//! format, and the exchange format of the benchmarks.

use std::io::{Read, Write};
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

/// Reads a little-endian float32 `.npy` file: (data, shape).
pub fn read_f32(path: &Path) -> std::io::Result<(Vec<f32>, Vec<usize>)> {
    let bad = |m: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {m}", path.display()),
        )
    };
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let hlen = if magic[6] == 1 {
        let mut b = [0u8; 2];
        f.read_exact(&mut b)?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)?;
        u32::from_le_bytes(b) as usize
    };
    let mut header = vec![0u8; hlen];
    f.read_exact(&mut header)?;
    let header = String::from_utf8_lossy(&header);
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("only little-endian float32 in C order is supported"));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or_else(|| bad("header has no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let mut raw = Vec::new();
    f.read_to_end(&mut raw)?;
    if raw.len() != n * 4 {
        return Err(bad(&format!(
            "holds {} bytes of data, the shape needs {}",
            raw.len(),
            n * 4
        )));
    }
    Ok((
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        shape,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        super::write_f32(&p, &data, &[2, 3, 4]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0, "header padded to 64 bytes");
        assert_eq!(super::read_f32(&p).unwrap(), (data, vec![2, 3, 4]));
    }
}
