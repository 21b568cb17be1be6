//! COCO instances JSON (ground truth) and results JSON (detections): reading with errors that
//! name the file and position, validation of boxes and scores naming the offending id, writing;
//! and the bbox evaluator equal to pycocotools' `COCOeval`, in one direction:
//! [`evaluate`] (eval) -> per-image matching -> [`Accumulated`] (accumulate) -> [`Summary`]
//! (summary), every stage reading the [`CocoParams`].

mod accumulate;
pub mod eval;
mod json;
mod matching;
mod params;
mod summary;

pub use accumulate::{pr_axis, recall_axis, Accumulated};
pub use eval::{evaluate, CocoEval};
pub use matching::EvalImage;
pub use params::{linspace, CocoParams};
pub use summary::{Summary, STAT_NAMES};

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::boxes::validate_xywh;
use crate::error::{DetError, Result};

/// One image of a COCO file (other fields are ignored on reading).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// `id`, the key annotations and detections refer to.
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `file_name`, relative to the image folder.
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `width` in pixels.
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `height` in pixels.
    pub height: Option<u32>,
}

/// One category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// `id`.
    pub id: i64,
    #[serde(default)]
    /// `name`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `supercategory`.
    pub supercategory: Option<String>,
}

/// One ground-truth annotation: `bbox` is `[x, y, w, h]`; `area` is the annotation's own field
/// (the segment area in real COCO), which decides the area range, as in pycocotools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// `id` (unique in the file; 0 never counts as matched, as in pycocotools).
    pub id: i64,
    /// `image_id` of the image it lies on.
    pub image_id: i64,
    /// `category_id`.
    pub category_id: i64,
    /// `bbox`: `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// Missing in the file: `w * h`.
    #[serde(default = "nan")]
    pub area: f64,
    #[serde(default, deserialize_with = "de_crowd")]
    /// `iscrowd`: a crowd region (detections on it are neither counted nor penalised).
    pub iscrowd: bool,
}

fn nan() -> f64 {
    f64::NAN
}

fn de_crowd<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    // pycocotools tests truthiness: 0/1 or false/true.
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::Number(n) => Ok(n.as_f64().is_some_and(|x| x != 0.0)),
        other => Err(serde::de::Error::custom(format!(
            "iscrowd: expected 0, 1 or a boolean, got {other}"
        ))),
    }
}

/// A COCO instances file (the parts box evaluation needs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// `images`.
    pub images: Vec<CocoImage>,
    #[serde(default)]
    /// `annotations` (ground truth).
    pub annotations: Vec<CocoAnnotation>,
    #[serde(default)]
    /// `categories`.
    pub categories: Vec<CocoCategory>,
}

/// One detection of a results file: `bbox` is `[x, y, w, h]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    /// `image_id` of the image it lies on.
    pub image_id: i64,
    /// `category_id` of the predicted class.
    pub category_id: i64,
    /// `bbox`: `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// `score`: the confidence, higher first.
    pub score: f64,
}

pub(crate) fn json_error(file: &str, e: serde_json::Error) -> DetError {
    DetError::Parse {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

impl CocoDataset {
    /// Parses and validates an instances JSON text; `file` names it in errors.
    pub fn from_json_str(text: &str, file: &str) -> Result<Self> {
        let mut d: CocoDataset = serde_json::from_str(text).map_err(|e| json_error(file, e))?;
        d.validate()?;
        Ok(d)
    }

    /// Reads an instances JSON file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DetError::io(path, e))?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Writes the data set as JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| json_error("<serialise>", e))?;
        cvlab_util::write_atomic(path, text.as_bytes()).map_err(|e| DetError::io(path, e))
    }

    /// Fills missing areas with `w * h`, rejects invalid boxes and duplicate ids.
    pub fn validate(&mut self) -> Result<()> {
        let mut seen = HashSet::new();
        for a in &mut self.annotations {
            validate_xywh(a.bbox, "annotation", a.id)?;
            if a.area.is_nan() {
                a.area = a.bbox[2] * a.bbox[3];
            }
            if !a.area.is_finite() || a.area < 0.0 {
                return Err(DetError::InvalidBox {
                    what: "annotation",
                    id: a.id.to_string(),
                    coords: a.bbox,
                    reason: "area must be a finite non-negative number",
                });
            }
            if !seen.insert(a.id) {
                return Err(DetError::DuplicateId {
                    what: "annotation",
                    id: a.id,
                });
            }
        }
        let mut cats = HashSet::new();
        for c in &self.categories {
            if !cats.insert(c.id) {
                return Err(DetError::DuplicateId {
                    what: "category",
                    id: c.id,
                });
            }
        }
        Ok(())
    }
}

/// Parses and validates a results JSON text (a list of detections). A large list is parsed on
/// the current rayon pool (in chunks, concatenated in file order); errors name the same line
/// and column as a sequential parse.
pub fn detections_from_json_str(text: &str, file: &str) -> Result<Vec<CocoDetection>> {
    let d: Vec<CocoDetection> = json::parse_array(text).map_err(|e| json_error(file, e))?;
    validate_detections(&d)?;
    Ok(d)
}

/// Reads a results JSON file.
pub fn read_detections(path: &Path) -> Result<Vec<CocoDetection>> {
    let text = std::fs::read_to_string(path).map_err(|e| DetError::io(path, e))?;
    detections_from_json_str(&text, &path.display().to_string())
}

/// Reads an instances file and a results file together on a pool of `threads` workers (0: all
/// cores), the large results list parsed in parallel chunks: what `det-eval` times as loading.
pub fn read_files(
    gt: &Path,
    dt: &Path,
    threads: usize,
) -> Result<(CocoDataset, Vec<CocoDetection>)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| DetError::arg("threads", "a thread pool", e.to_string()))?;
    let (g, d) = pool.install(|| rayon::join(|| CocoDataset::read(gt), || read_detections(dt)));
    Ok((g?, d?))
}

/// Writes a results JSON file.
pub fn write_detections(path: &Path, dets: &[CocoDetection]) -> Result<()> {
    let text = serde_json::to_string(dets).map_err(|e| json_error("<serialise>", e))?;
    cvlab_util::write_atomic(path, text.as_bytes()).map_err(|e| DetError::io(path, e))
}

/// Rejects NaN/negative-size boxes and non-finite scores, naming the detection's index.
pub fn validate_detections(d: &[CocoDetection]) -> Result<()> {
    for (i, det) in d.iter().enumerate() {
        validate_xywh(det.bbox, "detection", i)?;
        if !det.score.is_finite() {
            return Err(DetError::InvalidScore {
                what: "detection",
                id: i.to_string(),
                score: det.score,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_fills_area() {
        let text = r#"{"images":[{"id":1,"file_name":"a.png"}],
            "annotations":[{"id":5,"image_id":1,"category_id":2,"bbox":[1,2,3,4],"iscrowd":0,"segmentation":[[1,2]]}],
            "categories":[{"id":2,"name":"tree"}]}"#;
        let d = CocoDataset::from_json_str(text, "gt.json").unwrap();
        assert_eq!(d.annotations[0].area, 12.0);
        assert!(!d.annotations[0].iscrowd);
    }

    #[test]
    fn errors_name_file_and_position() {
        let e = CocoDataset::from_json_str("{\"images\": [\n{\"id\": }]}", "gt.json").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("gt.json:2:"), "{s}");
        let e = detections_from_json_str(
            r#"[{"image_id":1,"category_id":1,"bbox":[0,0,-1,2],"score":0.5}]"#,
            "dt.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("detection 0"), "{e}");
        let dup = r#"{"images":[],"annotations":[
            {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]},
            {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]}"#;
        assert!(matches!(
            CocoDataset::from_json_str(dup, "x").unwrap_err(),
            DetError::DuplicateId { id: 1, .. }
        ));
    }
}
