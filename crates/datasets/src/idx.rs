//! The idx format of MNIST-style data sets, parsed strictly; plain Rust (no libtorch).
//!
//! Layout: two zero bytes, a type code (only `0x08`, unsigned byte, is supported), the number of
//! dimensions, one big-endian `u32` per dimension, then exactly `product(dims)` elements. A file
//! that is shorter or longer than its header says is an error naming both sizes. [`read`]
//! decompresses gzip when the file starts with the gzip magic (`1f 8b`), whatever its name.

use std::io::Read;
use std::path::Path;

use crate::{DataError, Result};

/// The idx type code of unsigned bytes, the only element type supported.
pub const TYPE_U8: u8 = 0x08;

/// A parsed idx array: its dimensions and row-major elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of elements (the product of `dims`).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Checks the header of `bytes` and returns `(dims, header_len)` when the length is exact.
fn check(bytes: &[u8], origin: &Path) -> Result<(Vec<usize>, usize)> {
    let format = |reason: String| DataError::IdxFormat {
        path: origin.to_path_buf(),
        reason,
    };
    if bytes.len() < 4 {
        return Err(format(format!(
            "header truncated: need at least 4 bytes, the file has {}",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format(format!(
            "bad magic {:02x} {:02x} (expected 00 00)",
            bytes[0], bytes[1]
        )));
    }
    let code = bytes[2];
    if code != TYPE_U8 {
        let name = match code {
            0x09 => "signed byte",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            0x0E => "f64",
            _ => "unknown",
        };
        return Err(format(format!(
            "element type 0x{code:02x} ({name}) is not supported; only 0x08 (unsigned byte) is"
        )));
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        return Err(format("the header declares 0 dimensions".to_owned()));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format(format!(
            "header truncated: {ndims} dimensions need {header} header bytes, the file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| format(format!("dimensions {dims:?} overflow the address space")))?;
    if bytes.len() != total {
        return Err(DataError::Idx {
            path: origin.to_path_buf(),
            expected: total as u64,
            actual: bytes.len() as u64,
        });
    }
    Ok((dims, header))
}

/// Parses idx `bytes`; `origin` is the file they came from, named in errors.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    let (dims, header) = check(bytes, origin)?;
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Like [`parse`], reusing the buffer.
pub fn parse_vec(mut bytes: Vec<u8>, origin: &Path) -> Result<IdxArray> {
    let (dims, header) = check(&bytes, origin)?;
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads an idx file, raw or gzipped (detected by content, not by name).
pub fn read(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !is_gzip(&bytes) {
        return parse_vec(bytes, path);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    parse_vec(out, path)
}

/// Encodes `dims` (at most 255) and `data` as an unsigned-byte idx file (for tests and tools).
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("some/dir/file-idx3-ubyte")
    }

    #[test]
    fn parses_a_valid_array() {
        let bytes = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse(&bytes, &p()).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_vec(bytes, &p()).unwrap(), a);
    }

    #[test]
    fn truncated_file_names_path_and_both_sizes() {
        let mut bytes = encode(&[10, 28, 28], &[0; 7840]);
        bytes.truncate(5000);
        let err = parse(&bytes, &p()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Idx {
                    expected: 7856,
                    actual: 5000,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("file-idx3-ubyte"), "{text}");
        assert!(text.contains("7856") && text.contains("5000"), "{text}");
    }

    #[test]
    fn oversized_file_is_an_error() {
        let bytes = encode(&[3], &[1, 2, 3, 4]);
        let err = parse(&bytes, &p()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Idx {
                    expected: 11,
                    actual: 12,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut bytes = encode(&[1], &[0]);
        bytes[1] = 7;
        let text = parse(&bytes, &p()).unwrap_err().to_string();
        assert!(
            text.contains("bad magic 00 07") && text.contains("file-idx3-ubyte"),
            "{text}"
        );
    }

    #[test]
    fn other_element_types_are_named() {
        let mut bytes = encode(&[1], &[0, 0, 0, 0]);
        bytes[2] = 0x0D;
        let text = parse(&bytes, &p()).unwrap_err().to_string();
        assert!(
            text.contains("0x0d (f32)") && text.contains("0x08"),
            "{text}"
        );
    }

    #[test]
    fn short_header_and_zero_dims_are_errors() {
        for bytes in [
            vec![],
            vec![0, 0, 8],
            vec![0, 0, 8, 2, 0, 0, 0, 1],
            vec![0, 0, 8, 0],
        ] {
            let err = parse(&bytes, &p()).unwrap_err();
            assert!(matches!(err, DataError::IdxFormat { .. }), "{err:?}");
        }
    }

    #[test]
    fn overflowing_dims_are_an_error() {
        let bytes = encode(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        let text = parse(&bytes, &p()).unwrap_err().to_string();
        assert!(text.contains("overflow"), "{text}");
    }

    #[test]
    fn read_detects_gzip_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode(&[2, 2], &[9, 8, 7, 6]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        // Gzip content under a raw name, raw content under a .gz name: both read.
        std::fs::write(dir.path().join("a-ubyte"), &gz).unwrap();
        std::fs::write(dir.path().join("b-ubyte.gz"), &raw).unwrap();
        for name in ["a-ubyte", "b-ubyte.gz"] {
            let a = read(&dir.path().join(name)).unwrap();
            assert_eq!((a.dims, a.data), (vec![2, 2], vec![9, 8, 7, 6]));
        }
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode(&[100], &[3; 100]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        let path = dir.path().join("broken.gz");
        for bad in [gz[..gz.len() / 2].to_vec(), {
            let mut g = gz.clone();
            let n = g.len();
            g[n - 6] ^= 0xff; // CRC
            g
        }] {
            std::fs::write(&path, bad).unwrap();
            let err = read(&path).unwrap_err();
            assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
            assert!(err.to_string().contains("broken.gz"), "{err}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = read(Path::new("/nonexistent/xyz-idx1-ubyte")).unwrap_err();
        assert!(err.to_string().contains("xyz-idx1-ubyte"), "{err}");
    }
}
