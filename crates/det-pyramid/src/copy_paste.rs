//! Copy-paste oversampling of small objects (Kisantal et al. 2019, "Augmentation for small
//! object detection", arXiv 1902.07296, Sec. 4): each small object of a training image (COCO
//! small: area at most 32^2) is copied `copies` times to random places of the same image where
//! the copy overlaps no object, adding its box. A wrapper around any [`DetectionSet`]; the
//! placements are drawn once from a seed, so the augmented set is deterministic.

use std::sync::Arc;

use det_core::data::{Category, DetRecord, DetectionSet};
use det_core::synth::SplitMix64;
use det_core::Result as DetResult;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The augmentation's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPasteConfig {
    /// Objects with an area at or below this are copied (32^2, COCO's small).
    pub max_area: f64,
    /// Copies of each small object (the paper tries 1, 2, 3).
    pub copies: usize,
    /// Places tried per copy before giving it up.
    pub tries: usize,
    /// Seed of the placements.
    pub seed: u64,
}

impl Default for CopyPasteConfig {
    fn default() -> Self {
        Self {
            max_area: 32.0 * 32.0,
            copies: 2,
            tries: 20,
            seed: 0,
        }
    }
}

/// One pasted copy: the source box (whole pixels) and where its top-left corner goes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Paste {
    src: [i64; 4],
    to: (i64, i64),
}

/// A detection set with copy-pasted small objects.
pub struct CopyPaste {
    inner: Arc<dyn DetectionSet>,
    records: Vec<DetRecord>,
    pastes: Vec<Vec<Paste>>,
    name: String,
}

fn overlaps(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

impl CopyPaste {
    /// Draws the placements for every image of `inner`.
    pub fn new(inner: Arc<dyn DetectionSet>, cfg: &CopyPasteConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let mut records = Vec::with_capacity(inner.len());
        let mut pastes = Vec::with_capacity(inner.len());
        for r in inner.records() {
            let mut rec = r.clone();
            let mut mine = Vec::new();
            let (w, h) = (r.width as i64, r.height as i64);
            for (k, b) in r.boxes.iter().enumerate() {
                let area = (b[2] - b[0]) * (b[3] - b[1]);
                if area > cfg.max_area || area <= 0.0 || r.crowd[k] || r.difficult[k] {
                    continue;
                }
                let src = [
                    b[0].floor().max(0.0) as i64,
                    b[1].floor().max(0.0) as i64,
                    (b[2].ceil() as i64).min(w),
                    (b[3].ceil() as i64).min(h),
                ];
                let (pw, ph) = (src[2] - src[0], src[3] - src[1]);
                if pw < 1 || ph < 1 || pw >= w || ph >= h {
                    continue;
                }
                for _ in 0..cfg.copies {
                    for _ in 0..cfg.tries {
                        let x = (rng.uniform() * (w - pw) as f64) as i64;
                        let y = (rng.uniform() * (h - ph) as f64) as i64;
                        let patch = [x as f64, y as f64, (x + pw) as f64, (y + ph) as f64];
                        if rec.boxes.iter().any(|o| overlaps(o, &patch)) {
                            continue;
                        }
                        let (dx, dy) = ((x - src[0]) as f64, (y - src[1]) as f64);
                        rec.boxes.push([b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]);
                        rec.classes.push(r.classes[k]);
                        rec.crowd.push(false);
                        rec.difficult.push(false);
                        mine.push(Paste { src, to: (x, y) });
                        break;
                    }
                }
            }
            records.push(rec);
            pastes.push(mine);
        }
        let name = format!("{}+copy-paste", inner.name());
        Self {
            inner,
            records,
            pastes,
            name,
        }
    }

    /// Copies pasted over the whole set.
    pub fn pasted(&self) -> usize {
        self.pastes.iter().map(Vec::len).sum()
    }
}

impl DetectionSet for CopyPaste {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn categories(&self) -> &[Category] {
        self.inner.categories()
    }

    fn records(&self) -> &[DetRecord] {
        &self.records
    }

    fn image(&self, i: usize) -> DetResult<Tensor> {
        let img = self.inner.image(i)?;
        let out = img.copy();
        for p in self.pastes.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            let (pw, ph) = (p.src[2] - p.src[0], p.src[3] - p.src[1]);
            let patch = img.narrow(1, p.src[1], ph).narrow(2, p.src[0], pw);
            let mut dst = out.narrow(1, p.to.1, ph).narrow(2, p.to.0, pw);
            dst.copy_(&patch);
        }
        Ok(out)
    }

    fn channels(&self) -> i64 {
        self.inner.channels()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    struct One;

    fn record() -> DetRecord {
        DetRecord::new(
            1,
            "a.png".into(),
            (64, 64),
            vec![[4.0, 4.0, 12.0, 14.0], [20.0, 20.0, 60.0, 60.0]],
            vec![3, 1],
        )
    }

    impl DetectionSet for One {
        fn name(&self) -> String {
            "one".into()
        }
        fn categories(&self) -> &[Category] {
            &[]
        }
        fn records(&self) -> &[DetRecord] {
            std::slice::from_ref(Box::leak(Box::new(record())))
        }
        fn image(&self, _: usize) -> DetResult<Tensor> {
            let t = Tensor::zeros([3, 64, 64], (Kind::Float, Device::Cpu));
            let _ = t.narrow(1, 4, 10).narrow(2, 4, 8).fill_(1.0);
            Ok(t)
        }
        fn channels(&self) -> i64 {
            3
        }
    }

    #[test]
    fn small_objects_are_pasted_where_nothing_is() {
        let cp = CopyPaste::new(Arc::new(One), &CopyPasteConfig::default());
        let r = &cp.records()[0];
        // Only the 8x10 object is small; two copies, same class, same size, no overlap.
        assert_eq!(cp.pasted(), 2);
        assert_eq!(r.boxes.len(), 4);
        assert_eq!(&r.classes[2..], &[3, 3]);
        for b in &r.boxes[2..] {
            assert_eq!((b[2] - b[0], b[3] - b[1]), (8.0, 10.0));
            assert!(!overlaps(b, &r.boxes[1]) && !overlaps(b, &r.boxes[0]));
        }
        // The pixels moved with the box: the copy is as bright as the original.
        let img = cp.image(0).unwrap();
        let b = r.boxes[2];
        let patch = img.narrow(1, b[1] as i64, 10).narrow(2, b[0] as i64, 8);
        assert_eq!(patch.mean(Kind::Float).double_value(&[]), 1.0);
        assert!((img.sum(Kind::Float).double_value(&[]) - 3.0 * 3.0 * 80.0).abs() < 1e-6);
    }
}
