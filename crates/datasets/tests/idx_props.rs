//! Property tests of `idx::parse`: it never panics, and returns `Ok` exactly when the file length
//! matches its header.

use std::path::Path;

use datasets::idx::{encode, parse};
use datasets::DataError;
use proptest::prelude::*;

/// The exact length a well-formed u8 header announces, if any.
fn announced(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 4 || bytes[..3] != [0, 0, 8] || bytes[3] == 0 {
        return None;
    }
    let header = 4 + 4 * bytes[3] as usize;
    let dims = bytes.get(4..header)?;
    dims.chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .try_fold(1usize, |a, d| a.checked_mul(d))?
        .checked_add(header)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let res = parse(&bytes, Path::new("arb"));
        prop_assert_eq!(res.is_ok(), announced(&bytes) == Some(bytes.len()));
        if let Ok(a) = res {
            prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn header_prefixed_bytes_never_panic(
        ndims in 0u8..5,
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // A valid magic makes the deeper checks reachable.
        let mut bytes = vec![0, 0, 8, ndims];
        bytes.extend(rest);
        let res = parse(&bytes, Path::new("hdr"));
        prop_assert_eq!(res.is_ok(), announced(&bytes) == Some(bytes.len()));
    }

    #[test]
    fn valid_header_mutated_length(
        dims in proptest::collection::vec(0u32..7, 1..4),
        delta in -20i64..20,
        fill in any::<u8>(),
    ) {
        let n: usize = dims.iter().map(|&d| d as usize).product();
        let good = encode(&dims, &vec![fill; n]);
        let len = (good.len() as i64 + delta).max(0) as usize;
        let mut bytes = good.clone();
        bytes.resize(len, fill);
        let res = parse(&bytes, Path::new("dir/mutated-ubyte"));
        if len == good.len() {
            let a = res.unwrap();
            prop_assert_eq!(a.dims, dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
            prop_assert_eq!(a.data.len(), n);
        } else if len >= 4 + 4 * dims.len() {
            match res {
                Err(DataError::Idx { expected, actual, ref path }) => {
                    prop_assert_eq!(expected, good.len() as u64);
                    prop_assert_eq!(actual, len as u64);
                    prop_assert!(path.ends_with("mutated-ubyte"));
                }
                other => prop_assert!(false, "expected an Idx length error, got {:?}", other),
            }
        } else {
            let is_format = matches!(res, Err(DataError::IdxFormat { .. }));
            prop_assert!(is_format, "expected a header error, got {:?}", res);
        }
    }

    #[test]
    fn valid_file_with_one_flipped_byte(
        dims in proptest::collection::vec(1u32..6, 1..4),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let n: usize = dims.iter().map(|&d| d as usize).product();
        let mut bytes = encode(&dims, &vec![7; n]);
        let at = pos.index(bytes.len());
        bytes[at] ^= flip;
        let res = parse(&bytes, Path::new("flip"));
        prop_assert_eq!(res.is_ok(), announced(&bytes) == Some(bytes.len()));
        // A flip in the body keeps the file valid.
        prop_assert_eq!(res.is_ok(), at >= 4 + 4 * dims.len());
    }
}
