//! NumPy `.npy` files as ndarray arrays (`ndarray-npy`), for the parity fixtures the reference
//! scripts write and the per-frame feature streams the action-detection crates read. Errors
//! name the file and what was expected (element type, dimensionality) against what it holds.

use std::path::Path;

use ndarray::{ArrayBase, DataOwned, Dimension};
use ndarray_npy::{ReadableElement, WritableElement};

use crate::{DataError, Result};

/// Reads an `.npy` array of element type `A` and dimensionality `D` (e.g. `Array2<f32>`).
pub fn read_npy<S, D>(path: &Path) -> Result<ArrayBase<S, D>>
where
    S: DataOwned,
    S::Elem: ReadableElement,
    D: Dimension,
{
    ndarray_npy::read_npy(path).map_err(|e| DataError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `array` as a little-endian `.npy` file (C order), atomically.
pub fn write_npy<A, D>(path: &Path, array: &ndarray::Array<A, D>) -> Result<()>
where
    A: WritableElement,
    D: Dimension,
{
    let mut bytes = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(array, &mut bytes).map_err(|e| DataError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    cvlab_util::write_atomic(path, &bytes).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2, Array3};

    #[test]
    fn round_trip_and_typed_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        let a: Array2<f32> = array![[1.0, 2.5, -3.0], [4.0, 5.0, 6.0]];
        write_npy(&p, &a).unwrap();
        let b: Array2<f32> = read_npy(&p).unwrap();
        assert_eq!(a, b);
        // Wrong dimensionality and wrong element type are errors naming the file.
        let e = read_npy::<_, ndarray::Ix3>(&p)
            .map(|x: Array3<f32>| x.len())
            .unwrap_err();
        assert!(e.to_string().contains("x.npy"), "{e}");
        assert!(read_npy::<_, ndarray::Ix2>(&p)
            .map(|x: Array2<i64>| x.len())
            .is_err());
        std::fs::write(&p, b"not an npy file").unwrap();
        assert!(read_npy::<_, ndarray::Ix2>(&p)
            .map(|x: Array2<f32>| x.len())
            .is_err());
    }
}
