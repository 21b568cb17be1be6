//! The deepforest annotation CSV: a header then `image_path,xmin,ymin,xmax,ymax,label` rows
//! (pixel corners). Reading names the file, line and column of any malformed field; quoted
//! fields (RFC 4180, without embedded newlines) are accepted.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::boxes::validate_xyxy;
use crate::error::{DetError, Result};

/// One row: a box on an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvBox {
    /// `image_path`: the image the box lies on, as written in the file.
    pub image_path: String,
    /// `[xmin, ymin, xmax, ymax]`.
    pub bbox: [f64; 4],
    /// `label`: the class name.
    pub label: String,
}

const COLUMNS: [&str; 6] = ["image_path", "xmin", "ymin", "xmax", "ymax", "label"];

fn split(line: &str) -> std::result::Result<Vec<(usize, String)>, (usize, &'static str)> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut start = 0;
    loop {
        let mut field = String::new();
        if let Some(&(_, '"')) = chars.peek() {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '"')) => {
                        if let Some(&(_, '"')) = chars.peek() {
                            chars.next();
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some((_, c)) => field.push(c),
                    None => return Err((start, "unterminated quoted field")),
                }
            }
            match chars.next() {
                None => {
                    out.push((start, field));
                    return Ok(out);
                }
                Some((i, ',')) => {
                    out.push((start, field));
                    start = i + 1;
                }
                Some((i, _)) => return Err((i, "expected ',' after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push((start, field));
                        return Ok(out);
                    }
                    Some((i, ',')) => {
                        out.push((start, field));
                        start = i + 1;
                        break;
                    }
                    Some((_, c)) => field.push(c),
                }
            }
        }
    }
}

/// Parses deepforest CSV text; `file` names it in errors. Extra columns after the six are
/// ignored; the header must name the six columns in order.
pub fn from_csv_str(text: &str, file: &str) -> Result<Vec<CsvBox>> {
    let perr = |line: usize, column: usize, message: String| DetError::Parse {
        file: file.to_owned(),
        line,
        column,
        message,
    };
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) => h.trim_start_matches('\u{feff}'),
        None => return Err(perr(1, 1, "empty file: expected a header".into())),
    };
    let cols = split(header.trim_end_matches('\r')).map_err(|(c, m)| perr(1, c + 1, m.into()))?;
    let names: Vec<&str> = cols.iter().map(|(_, s)| s.trim()).collect();
    if names.len() < 6 || names[..6] != COLUMNS {
        return Err(perr(
            1,
            1,
            format!(
                "expected header {}, got {}",
                COLUMNS.join(","),
                names.join(",")
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let f = split(line).map_err(|(c, m)| perr(line_no, c + 1, m.into()))?;
        if f.len() < 6 {
            return Err(perr(
                line_no,
                line.len() + 1,
                format!("expected 6 fields, got {}", f.len()),
            ));
        }
        let mut bbox = [0.0; 4];
        for k in 0..4 {
            let (col, s) = &f[k + 1];
            bbox[k] = s.trim().parse().map_err(|_| {
                perr(
                    line_no,
                    col + 1,
                    format!("{}: expected a number, got {s:?}", COLUMNS[k + 1]),
                )
            })?;
        }
        validate_xyxy(bbox, "row", format!("{line_no} of {file}"))?;
        out.push(CsvBox {
            image_path: f[0].1.clone(),
            bbox,
            label: f[5].1.clone(),
        });
    }
    Ok(out)
}

/// Reads a deepforest CSV file.
pub fn read_csv(path: &Path) -> Result<Vec<CsvBox>> {
    let bytes = std::fs::read(path).map_err(|e| DetError::io(path, e))?;
    let file = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| DetError::Parse {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })?;
    from_csv_str(&text, &file)
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The rows as deepforest CSV text.
pub fn to_csv_string(rows: &[CsvBox]) -> String {
    let mut s = COLUMNS.join(",") + "\n";
    for r in rows {
        s += &format!(
            "{},{},{},{},{},{}\n",
            quote(&r.image_path),
            r.bbox[0],
            r.bbox[1],
            r.bbox[2],
            r.bbox[3],
            quote(&r.label)
        );
    }
    s
}

/// Writes the rows as deepforest CSV.
pub fn write_csv(path: &Path, rows: &[CsvBox]) -> Result<()> {
    cvlab_util::write_atomic(path, to_csv_string(rows).as_bytes())
        .map_err(|e| DetError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_round_trips_and_reports_positions() {
        let t = "image_path,xmin,ymin,xmax,ymax,label\nOSBS_029.png,203,67,227,90,Tree\n\"a,b.png\",1.5,2,3,4,\"Al\"\"ive\"\n";
        let rows = from_csv_str(t, "a.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].image_path, "a,b.png");
        assert_eq!(rows[1].label, "Al\"ive");
        assert_eq!(from_csv_str(&to_csv_string(&rows), "b.csv").unwrap(), rows);
        let e = from_csv_str(&t.replace("227", "2x7"), "a.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.csv:2:21:"), "{e}");
        let e = from_csv_str(&t.replace("227", "100"), "a.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2 of a.csv") && e.contains("x2 < x1"), "{e}");
        assert!(from_csv_str("a,b\n", "h.csv").is_err());
    }
}
