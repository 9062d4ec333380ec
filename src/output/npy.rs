//! NumPy `.npy` for float32 and uint8 arrays (C order, through `ndarray-npy`): the Fishyscapes
//! output format, and the exchange format of the benchmarks.

use ndarray_npy::WriteNpyExt;
use std::io::Write;
use std::path::Path;

/// Writes a float32 array of `shape` atomically.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> std::io::Result<()> {
    write(path, data, shape)
}

/// Writes a uint8 array of `shape` atomically.
pub fn write_u8(path: &Path, data: &[u8], shape: &[usize]) -> std::io::Result<()> {
    write(path, data, shape)
}

fn write<T: ndarray_npy::WritableElement>(
    path: &Path,
    data: &[T],
    shape: &[usize],
) -> std::io::Result<()> {
    let array = ndarray::ArrayView::from_shape(ndarray::IxDyn(shape), data).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} values do not fill the shape {shape:?}: {e}", data.len()),
        )
    })?;
    super::write_atomic(path, |tmp| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        array.write_npy(&mut f).map_err(std::io::Error::other)?;
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
