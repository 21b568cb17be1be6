//! A results file (a JSON array of ~10^5-10^6 flat detection objects) parsed on the current
//! rayon pool: one byte scan finds the array's top-level elements, chunks of them are parsed
//! in parallel with serde_json and concatenated in file order. Anything the scan does not
//! recognise as a plain array, and any element that does not parse, sends the whole text to
//! serde_json in one piece, so errors keep their exact line and column.

use rayon::prelude::*;
use serde::de::DeserializeOwned;

/// Byte ranges of the top-level elements of the JSON array `text`, or `None` when `text` is not
/// `[ ... ]` with only whitespace around (the caller then parses it whole).
fn array_elements(text: &[u8]) -> Option<Vec<(usize, usize)>> {
    let open = text.iter().position(|b| !b.is_ascii_whitespace())?;
    if text[open] != b'[' {
        return None;
    }
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let mut start = open + 1;
    let mut close = None;
    for (i, &b) in text.iter().enumerate().skip(open + 1) {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b']' if depth == 0 => {
                close = Some(i);
                break;
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    let close = close?;
    if !text[close + 1..].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let last = &text[start..close];
    if last.iter().all(u8::is_ascii_whitespace) {
        // `[]`, or a trailing comma (invalid: the whole-text parse reports it).
        return out.is_empty().then_some(out);
    }
    out.push((start, close));
    Some(out)
}

/// The elements per parallel task.
const CHUNK: usize = 8192;

/// Parses the JSON array `text` into `Vec<T>`, in parallel when it is large.
pub(super) fn parse_array<T>(text: &str) -> serde_json::Result<Vec<T>>
where
    T: DeserializeOwned + Send,
{
    let bytes = text.as_bytes();
    let whole = || serde_json::from_str::<Vec<T>>(text);
    if bytes.len() < (1 << 20) || rayon::current_num_threads() < 2 {
        return whole();
    }
    let Some(ranges) = array_elements(bytes) else {
        return whole();
    };
    let parts: serde_json::Result<Vec<Vec<T>>> = ranges
        .par_chunks(CHUNK)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&(s, e)| serde_json::from_slice::<T>(&bytes[s..e]))
                .collect()
        })
        .collect();
    match parts {
        Ok(parts) => Ok(parts.into_iter().flatten().collect()),
        // The position of the first error in the file, as a sequential parse gives it.
        Err(_) => whole(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_split_at_top_level_commas_only() {
        let t = br#" [ {"a": [1, 2], "s": "x,]}\"y"}, {"b": {"c": 3}} ,4 ] "#;
        let r = array_elements(t).unwrap();
        let parts: Vec<&str> = r
            .iter()
            .map(|&(s, e)| std::str::from_utf8(&t[s..e]).unwrap().trim())
            .collect();
        assert_eq!(
            parts,
            [
                r#"{"a": [1, 2], "s": "x,]}\"y"}"#,
                r#"{"b": {"c": 3}}"#,
                "4"
            ]
        );
        assert_eq!(array_elements(b"[ ]").unwrap(), []);
        for bad in [&b"{}"[..], b"[1,]", b"[1] x", b"[1", b"[}]"] {
            assert!(
                array_elements(bad).is_none(),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn a_large_array_parses_in_parallel_as_it_does_whole() {
        let items: Vec<serde_json::Value> = (0..60_000)
            .map(|i| serde_json::json!({"id": i, "v": [i as f64 / 7.0, -1e-3], "s": "a,\"]"}))
            .collect();
        let text = serde_json::to_string(&items).unwrap();
        assert!(text.len() > 1 << 20);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let got: Vec<serde_json::Value> = pool.install(|| parse_array(&text)).unwrap();
        assert_eq!(got, items);
        // An error deep in the file keeps the position of the sequential parse.
        let broken = text.replacen("\"id\":59000,", "\"id\":59000,,", 1);
        let whole = serde_json::from_str::<Vec<serde_json::Value>>(&broken).unwrap_err();
        let par = pool
            .install(|| parse_array::<serde_json::Value>(&broken))
            .unwrap_err();
        assert_eq!((par.line(), par.column()), (whole.line(), whole.column()));
    }
}
