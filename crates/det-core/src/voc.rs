//! Pascal VOC annotation XML (one file per image): reading with errors naming the file and
//! position, and writing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::boxes::validate_xyxy;
use crate::error::{DetError, Result};
use crate::xml::{self, Element};

/// One object of a VOC annotation; `bbox` is `[xmin, ymin, xmax, ymax]` in VOC's 1-based
/// inclusive pixel coordinates, as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocObject {
    /// `<name>`: the class.
    pub name: String,
    /// `<bndbox>`: `[xmin, ymin, xmax, ymax]`, 1-based inclusive.
    pub bbox: [f64; 4],
    /// `<difficult>`: hard to recognise; the VOC protocol neither counts nor penalises it.
    pub difficult: bool,
    /// `<truncated>`: the object extends beyond the image.
    pub truncated: bool,
}

/// A VOC annotation file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocAnnotation {
    /// `<filename>`: the image file.
    pub filename: String,
    /// `(width, height, depth)` when the file has a `<size>`.
    pub size: Option<(u32, u32, u32)>,
    /// The `<object>` elements, in file order.
    pub objects: Vec<VocObject>,
}

fn perr(file: &str, el: &Element, message: String) -> DetError {
    DetError::Parse {
        file: file.to_owned(),
        line: el.line,
        column: el.column,
        message,
    }
}

fn field<'a>(file: &str, el: &'a Element, name: &str) -> Result<&'a Element> {
    el.child(name)
        .ok_or_else(|| perr(file, el, format!("<{}> has no <{name}>", el.name)))
}

fn number<T: std::str::FromStr>(file: &str, el: &Element, name: &str) -> Result<T> {
    let c = field(file, el, name)?;
    let t = c.text.trim();
    t.parse()
        .map_err(|_| perr(file, c, format!("<{name}>: expected a number, got {t:?}")))
}

fn flag(file: &str, el: &Element, name: &str) -> Result<bool> {
    match el.child(name) {
        None => Ok(false),
        Some(c) => match c.text.trim() {
            "" | "0" => Ok(false),
            "1" => Ok(true),
            t => Err(perr(
                file,
                c,
                format!("<{name}>: expected 0 or 1, got {t:?}"),
            )),
        },
    }
}

impl VocAnnotation {
    /// Parses VOC XML text; `file` names it in errors.
    pub fn from_xml_str(text: &str, file: &str) -> Result<Self> {
        let root = xml::parse(text).map_err(|e| DetError::Parse {
            file: file.to_owned(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        if root.name != "annotation" {
            return Err(perr(
                file,
                &root,
                format!("expected root <annotation>, got <{}>", root.name),
            ));
        }
        let filename = root
            .child("filename")
            .map(|f| f.text.trim().to_owned())
            .unwrap_or_default();
        let size = match root.child("size") {
            None => None,
            Some(s) => Some((
                number(file, s, "width")?,
                number(file, s, "height")?,
                s.child("depth")
                    .map(|_| number(file, s, "depth"))
                    .transpose()?
                    .unwrap_or(3),
            )),
        };
        let mut objects = Vec::new();
        for (i, o) in root.children("object").enumerate() {
            let name = field(file, o, "name")?.text.trim().to_owned();
            let b = field(file, o, "bndbox")?;
            let bbox = [
                number(file, b, "xmin")?,
                number(file, b, "ymin")?,
                number(file, b, "xmax")?,
                number(file, b, "ymax")?,
            ];
            validate_xyxy(bbox, "object", format!("{i} ({file}:{})", o.line))?;
            objects.push(VocObject {
                name,
                bbox,
                difficult: flag(file, o, "difficult")?,
                truncated: flag(file, o, "truncated")?,
            });
        }
        Ok(VocAnnotation {
            filename,
            size,
            objects,
        })
    }

    /// Reads a VOC XML file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DetError::io(path, e))?;
        let file = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|e| DetError::Parse {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        })?;
        Self::from_xml_str(&text, &file)
    }

    /// The annotation as VOC XML.
    pub fn to_xml(&self) -> String {
        fn esc(s: &str) -> String {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        }
        let mut s = String::from("<annotation>\n");
        s += &format!("  <filename>{}</filename>\n", esc(&self.filename));
        if let Some((w, h, d)) = self.size {
            s += &format!(
                "  <size><width>{w}</width><height>{h}</height><depth>{d}</depth></size>\n"
            );
        }
        for o in &self.objects {
            s += &format!(
                "  <object>\n    <name>{}</name>\n    <truncated>{}</truncated>\n    <difficult>{}</difficult>\n    <bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>\n  </object>\n",
                esc(&o.name),
                o.truncated as u8,
                o.difficult as u8,
                o.bbox[0],
                o.bbox[1],
                o.bbox[2],
                o.bbox[3]
            );
        }
        s + "</annotation>\n"
    }

    /// Writes the annotation as VOC XML.
    pub fn write(&self, path: &Path) -> Result<()> {
        cvlab_util::write_atomic(path, self.to_xml().as_bytes()).map_err(|e| DetError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "<annotation>\n<filename>OSBS_029.png</filename>\n<size><width>400</width><height>400</height><depth>3</depth></size>\n<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>203</xmin><ymin>67</ymin><xmax>227</xmax><ymax>90</ymax></bndbox></object>\n<object><name>Tree</name><difficult>1</difficult><bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>\n</annotation>";

    #[test]
    fn reads_and_round_trips() {
        let a = VocAnnotation::from_xml_str(SAMPLE, "a.xml").unwrap();
        assert_eq!(a.filename, "OSBS_029.png");
        assert_eq!(a.size, Some((400, 400, 3)));
        assert_eq!(a.objects.len(), 2);
        assert_eq!(a.objects[0].bbox, [203.0, 67.0, 227.0, 90.0]);
        assert!(a.objects[1].difficult);
        let b = VocAnnotation::from_xml_str(&a.to_xml(), "b.xml").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = SAMPLE.replace("<xmax>227</xmax>", "<xmax>abc</xmax>");
        let e = VocAnnotation::from_xml_str(&bad, "a.xml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.xml:4:"), "{e}");
        let flipped = SAMPLE.replace("<xmax>227</xmax>", "<xmax>100</xmax>");
        let e = VocAnnotation::from_xml_str(&flipped, "a.xml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("object 0") && e.contains("x2 < x1"), "{e}");
    }
}
