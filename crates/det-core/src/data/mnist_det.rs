//! MNIST-det: a detection set built from the real MNIST digits (LeCun et al. 1998; the idx
//! files through `datasets::mnist`), canvases holding several digits at very different scales,
//! so that COCO's small (area < 32²), medium and large (> 96²) ranges are all populated and
//! small objects are plentiful — a CPU-sized stand-in for the scale problem that FPN, SNIP,
//! TridentNet, CenterNet, FCOS and YOLO address.
//!
//! Recipe (defaults in [`MnistDetConfig`]), each canvas `i` from its own seeded generator
//! (splitmix64 of a hash of `(seed, split, i)`, so a canvas does not depend on how many were
//! made before it):
//! 1. `n` digits, uniform in `[min_digits, max_digits]`, each a uniformly drawn MNIST digit of
//!    the split (train canvases from MNIST's 60k train digits, test canvases from its 10k test
//!    digits) with a longer side `L` log-uniform in `[min_size, max_size]`.
//! 2. The digit's ink (source pixels > 0) is cropped from its 28x28 field and resampled so
//!    that its longer side is `L` (aspect kept; `image`'s triangle filter, which widens its
//!    support when shrinking, so small digits are anti-aliased, not aliased).
//! 3. The box is the extent of the resampled pixels `>= ink_threshold` (on the 0..1 scale,
//!    default 0.3): tight around the ink, `[x0, y0, x1 + 1, y1 + 1]` in continuous pixel
//!    coordinates. The COCO `area` is the box area `w * h`.
//! 4. Digits are placed largest first at uniform positions that keep the box inside the
//!    canvas; a position is rejected when the box covers more than `max_overlap` of a placed
//!    box's area or that box covers more than `max_overlap` of its own (intersection over the
//!    smaller area, so IoU is below it too); after `placement_tries` rejections the digit is
//!    left out.
//! 5. Clutter: up to `max_clutter` fragments (30-60 % crops of other digits' ink, scaled like
//!    the digits) placed where they touch no digit box (with a 2 px margin), without boxes.
//! 6. Canvases are the pixel-wise maximum of the pieces (white ink on black), 8-bit.

use std::path::Path;
use std::sync::Arc;

use image::GrayImage;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::digits::{extent, ink_level, DigitBank};
use super::{out_of_range, torch_err, AreaCounts, Category, DetRecord, DetectionSet};
use crate::error::{DetError, Result};
use crate::synth::SplitMix64;

/// Which MNIST split the digits come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MnistSplit {
    /// Digits from MNIST's 60k training images.
    Train,
    /// Digits from MNIST's 10k test images.
    Test,
}

impl MnistSplit {
    /// `"train"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MnistSplit::Train => "train",
            MnistSplit::Test => "test",
        }
    }
}

/// How MNIST-det canvases are made (see the module docs for the recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnistDetConfig {
    /// Canvas width in pixels (256).
    pub width: u32,
    /// Canvas height in pixels (256).
    pub height: u32,
    /// Fewest digits per canvas (2).
    pub min_digits: usize,
    /// Most digits per canvas (8).
    pub max_digits: usize,
    /// Longer side of a digit's ink in pixels, log-uniform in `[min_size, max_size]`.
    pub min_size: f64,
    /// Largest longer side of a digit's ink (160).
    pub max_size: f64,
    /// Largest intersection over the smaller box's area between two digits.
    pub max_overlap: f64,
    /// Placements tried before a digit is left out (50).
    pub placement_tries: usize,
    /// Fragments of other digits per canvas, uniform in `[0, max_clutter]`.
    pub max_clutter: usize,
    /// Ink level (0..1) that defines a box's extent.
    pub ink_threshold: f64,
    /// 1 (grey) or 3 (grey replicated to RGB).
    pub channels: i64,
    /// Seed of every canvas generator.
    pub seed: u64,
    /// Canvases in the train split.
    pub train_images: usize,
    /// Canvases in the test split.
    pub test_images: usize,
}

impl Default for MnistDetConfig {
    /// 256x256 canvases with 2-8 digits of 8-160 px (the upper end above 128 so that large
    /// boxes, over 96², are not rare: a digit's ink is about 0.5-0.8 as wide as tall), at most
    /// 30 % overlap, up to 3 fragments, RGB, 1,000 train and 250 test canvases.
    fn default() -> Self {
        MnistDetConfig {
            width: 256,
            height: 256,
            min_digits: 2,
            max_digits: 8,
            min_size: 8.0,
            max_size: 160.0,
            max_overlap: 0.3,
            placement_tries: 50,
            max_clutter: 3,
            ink_threshold: 0.3,
            channels: 3,
            seed: 0,
            train_images: 1000,
            test_images: 250,
        }
    }
}

impl MnistDetConfig {
    fn check(&self) -> Result<()> {
        let bad = |name, expected: &str, got: String| Err(DetError::arg(name, expected, got));
        if self.width == 0 || self.height == 0 {
            return bad(
                "canvas size",
                "non-zero width and height",
                format!("{}x{}", self.width, self.height),
            );
        }
        if self.min_digits > self.max_digits {
            return bad(
                "digits per canvas",
                "min_digits <= max_digits",
                format!("{}..{}", self.min_digits, self.max_digits),
            );
        }
        if !(self.min_size >= 1.0 && self.min_size <= self.max_size && self.max_size.is_finite()) {
            return bad(
                "digit size",
                "1 <= min_size <= max_size < inf",
                format!("{}..{}", self.min_size, self.max_size),
            );
        }
        if !(0.0..=1.0).contains(&self.max_overlap) {
            return bad("max_overlap", "in [0, 1]", self.max_overlap.to_string());
        }
        if !(self.ink_threshold > 0.0 && self.ink_threshold <= 1.0) {
            return bad("ink_threshold", "in (0, 1]", self.ink_threshold.to_string());
        }
        if self.channels != 1 && self.channels != 3 {
            return bad("channels", "1 or 3", self.channels.to_string());
        }
        Ok(())
    }
}

/// A digit on a canvas: the MNIST digit, its rendered patch (top-left `origin`, `size`) and
/// its tight box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedDigit {
    /// Index of the digit in its MNIST split.
    pub mnist_index: usize,
    /// The digit, 0-9.
    pub class: i64,
    /// Top-left of the rendered patch on the canvas.
    pub origin: (i64, i64),
    /// `(width, height)` of the rendered patch.
    pub size: (u32, u32),
    /// The tight `xyxy` box around the ink.
    pub bbox: [f64; 4],
}

/// A clutter fragment: window `src = [x, y, w, h]` of a digit's 28x28 field, rendered at
/// `size` with top-left `origin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragment {
    /// Index of the source digit in its MNIST split.
    pub mnist_index: usize,
    /// `[x, y, w, h]` window of the 28x28 field.
    pub src: [u32; 4],
    /// Top-left on the canvas.
    pub origin: (i64, i64),
    /// `(width, height)` rendered.
    pub size: (u32, u32),
}

/// Everything on one canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasLayout {
    /// The digits, largest first.
    pub digits: Vec<PlacedDigit>,
    /// The box-less clutter fragments.
    pub clutter: Vec<Fragment>,
}

fn hash64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn overlap_too_large(a: &[f64; 4], b: &[f64; 4], max: f64) -> bool {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter > max * area(a).min(area(b))
}

fn log_uniform(r: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    (lo.ln() + r.uniform() * (hi.ln() - lo.ln())).exp()
}

/// Patch size for a window `(w, h)` whose longer side becomes `long`.
fn scaled(w: u32, h: u32, scale: f64) -> (u32, u32) {
    (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    )
}

/// MNIST-det canvases of one split: layouts and boxes made at construction, pixels rendered on
/// demand (deterministically) from the digits kept in memory.
pub struct MnistDet {
    cfg: MnistDetConfig,
    split: MnistSplit,
    bank: Arc<DigitBank>,
    layouts: Vec<CanvasLayout>,
    records: Vec<DetRecord>,
    categories: Vec<Category>,
}

impl std::fmt::Debug for MnistDet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MnistDet")
            .field("split", &self.split)
            .field("canvases", &self.layouts.len())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl MnistDet {
    /// Both splits from the real MNIST (`datasets::mnist::load("mnist", data_root)`, which
    /// fetches the files when `data_root` is `None` and they are missing).
    pub fn load(data_root: Option<&Path>, cfg: &MnistDetConfig) -> Result<(Self, Self)> {
        let m = datasets::mnist::load("mnist", data_root).map_err(|e| DetError::Dataset {
            name: "mnist".to_owned(),
            message: e.to_string(),
        })?;
        Ok((
            Self::from_digits(&m.train_images, &m.train_labels, MnistSplit::Train, cfg)?,
            Self::from_digits(&m.test_images, &m.test_labels, MnistSplit::Test, cfg)?,
        ))
    }

    /// Canvases of `split` (`cfg.train_images` or `cfg.test_images` of them) from digits
    /// `images` (`[N, 1, 28, 28]` or `[N, 28, 28]` in `[0, 1]`) with labels `[N]` in 0..=9.
    pub fn from_digits(
        images: &Tensor,
        labels: &Tensor,
        split: MnistSplit,
        cfg: &MnistDetConfig,
    ) -> Result<Self> {
        cfg.check()?;
        let bank = Arc::new(DigitBank::from_tensors(images, labels)?);
        let n = match split {
            MnistSplit::Train => cfg.train_images,
            MnistSplit::Test => cfg.test_images,
        };
        let mut ds = MnistDet {
            cfg: cfg.clone(),
            split,
            bank,
            layouts: Vec::with_capacity(n),
            records: Vec::with_capacity(n),
            categories: (0..10)
                .map(|k| Category {
                    id: k + 1,
                    name: k.to_string(),
                })
                .collect(),
        };
        for i in 0..n {
            let layout = ds.make_layout(i);
            ds.records.push(DetRecord::new(
                i as i64 + 1,
                format!("{:06}.png", i + 1),
                (cfg.width, cfg.height),
                layout.digits.iter().map(|d| d.bbox).collect(),
                layout.digits.iter().map(|d| d.class).collect(),
            ));
            ds.layouts.push(layout);
        }
        Ok(ds)
    }

    /// The recipe the set was made with.
    pub fn config(&self) -> &MnistDetConfig {
        &self.cfg
    }

    /// The MNIST split its digits come from.
    pub fn split(&self) -> MnistSplit {
        self.split
    }

    /// The layout of canvas `i`.
    pub fn layout(&self, i: usize) -> Result<&CanvasLayout> {
        self.layouts
            .get(i)
            .ok_or_else(|| out_of_range("canvas index", i, self.layouts.len()))
    }

    fn make_layout(&self, i: usize) -> CanvasLayout {
        let c = &self.cfg;
        let split_salt = match self.split {
            MnistSplit::Train => 1,
            MnistSplit::Test => 2,
        };
        let mut r = SplitMix64::new(hash64(c.seed ^ hash64(split_salt ^ hash64(i as u64))));
        let n_bank = self.bank.len() as u64;
        let n = c.min_digits + r.below((c.max_digits - c.min_digits + 1) as u64) as usize;
        let mut wanted: Vec<(usize, f64)> = (0..n)
            .map(|_| {
                let idx = r.below(n_bank) as usize;
                (idx, log_uniform(&mut r, c.min_size, c.max_size))
            })
            .collect();
        wanted.sort_by(|a, b| b.1.total_cmp(&a.1));
        let level = ink_level(c.ink_threshold);
        let (cw, ch) = (c.width as u64, c.height as u64);
        let mut digits: Vec<PlacedDigit> = Vec::with_capacity(n);
        for (idx, long) in wanted {
            let ink = self.bank.ink[idx];
            let size = scaled(ink[2], ink[3], long / ink[2].max(ink[3]) as f64);
            let patch = self.bank.render(idx, ink, size);
            let Some(e) = extent(patch.as_raw(), size.0, size.1, level) else {
                continue;
            };
            if e[2] as u64 > cw || e[3] as u64 > ch {
                continue;
            }
            for _ in 0..c.placement_tries {
                let bx = r.below(cw - e[2] as u64 + 1) as f64;
                let by = r.below(ch - e[3] as u64 + 1) as f64;
                let bbox = [bx, by, bx + e[2] as f64, by + e[3] as f64];
                if digits
                    .iter()
                    .any(|d| overlap_too_large(&d.bbox, &bbox, c.max_overlap))
                {
                    continue;
                }
                digits.push(PlacedDigit {
                    mnist_index: idx,
                    class: self.bank.labels[idx],
                    origin: (bx as i64 - e[0] as i64, by as i64 - e[1] as i64),
                    size,
                    bbox,
                });
                break;
            }
        }
        let mut clutter = Vec::new();
        let k = r.below(c.max_clutter as u64 + 1);
        for _ in 0..k {
            let idx = r.below(n_bank) as usize;
            let ink = self.bank.ink[idx];
            let fw = ((ink[2] as f64 * (0.3 + 0.3 * r.uniform())).round() as u32).clamp(1, ink[2]);
            let fh = ((ink[3] as f64 * (0.3 + 0.3 * r.uniform())).round() as u32).clamp(1, ink[3]);
            let src = [
                ink[0] + r.below((ink[2] - fw + 1) as u64) as u32,
                ink[1] + r.below((ink[3] - fh + 1) as u64) as u32,
                fw,
                fh,
            ];
            let long = log_uniform(&mut r, c.min_size, c.max_size);
            let size = scaled(fw, fh, long / ink[2].max(ink[3]) as f64);
            if size.0 as u64 > cw || size.1 as u64 > ch {
                continue;
            }
            for _ in 0..c.placement_tries.min(20) {
                let x = r.below(cw - size.0 as u64 + 1) as f64;
                let y = r.below(ch - size.1 as u64 + 1) as f64;
                let rect = [
                    x - 2.0,
                    y - 2.0,
                    x + size.0 as f64 + 2.0,
                    y + size.1 as f64 + 2.0,
                ];
                if digits
                    .iter()
                    .any(|d| overlap_too_large(&d.bbox, &rect, 0.0))
                {
                    continue;
                }
                clutter.push(Fragment {
                    mnist_index: idx,
                    src,
                    origin: (x as i64, y as i64),
                    size,
                });
                break;
            }
        }
        CanvasLayout { digits, clutter }
    }

    /// The rendered patch of digit `k` of canvas `i` (before compositing; top-left at
    /// `layout(i).digits[k].origin`).
    pub fn digit_patch(&self, i: usize, k: usize) -> Result<GrayImage> {
        let l = self.layout(i)?;
        let d = l
            .digits
            .get(k)
            .ok_or_else(|| out_of_range("digit index", k, l.digits.len()))?;
        Ok(self
            .bank
            .render(d.mnist_index, self.bank.ink[d.mnist_index], d.size))
    }

    /// Canvas `i` as an 8-bit grey image.
    pub fn canvas(&self, i: usize) -> Result<GrayImage> {
        let l = self.layout(i)?;
        let mut out = GrayImage::new(self.cfg.width, self.cfg.height);
        let mut paste = |p: &GrayImage, (ox, oy): (i64, i64)| {
            for (x, y, v) in p.enumerate_pixels() {
                let (cx, cy) = (ox + x as i64, oy + y as i64);
                if cx >= 0 && cy >= 0 && cx < out.width() as i64 && cy < out.height() as i64 {
                    let o = out.get_pixel_mut(cx as u32, cy as u32);
                    o.0[0] = o.0[0].max(v.0[0]);
                }
            }
        };
        for d in &l.digits {
            let p = self
                .bank
                .render(d.mnist_index, self.bank.ink[d.mnist_index], d.size);
            paste(&p, d.origin);
        }
        for f in &l.clutter {
            paste(&self.bank.render(f.mnist_index, f.src, f.size), f.origin);
        }
        Ok(out)
    }

    /// Box counts per area range.
    pub fn area_counts(&self) -> AreaCounts {
        // Records are in memory: this cannot fail.
        AreaCounts::of(self).unwrap_or_default()
    }

    /// Writes `root/<split>/<file_name>` PNGs (grey for 1 channel, RGB for 3) and
    /// `root/instances_<split>.json` ([`super::write_coco`]); a [`super::CocoFolder`] on
    /// `root/<split>` reads it back. The same config gives byte-identical files.
    pub fn write_folder(&self, root: &Path) -> Result<()> {
        let dir = root.join(self.split.as_str());
        std::fs::create_dir_all(&dir).map_err(|e| DetError::io(&dir, e))?;
        for (i, r) in self.records.iter().enumerate() {
            let g = self.canvas(i)?;
            let path = dir.join(&r.file_name);
            let saved = if self.cfg.channels == 1 {
                g.save(&path)
            } else {
                image::DynamicImage::ImageLuma8(g).to_rgb8().save(&path)
            };
            saved.map_err(|e| DetError::io(&path, std::io::Error::other(e.to_string())))?;
        }
        super::write_coco(
            self,
            &root.join(format!("instances_{}.json", self.split.as_str())),
        )
    }
}

impl DetectionSet for MnistDet {
    fn name(&self) -> String {
        format!("mnist-det/{}", self.split.as_str())
    }
    fn categories(&self) -> &[Category] {
        &self.categories
    }
    fn records(&self) -> &[DetRecord] {
        &self.records
    }
    fn image(&self, i: usize) -> Result<Tensor> {
        let g = super::gray_to_tensor(&self.canvas(i)?)?;
        if self.cfg.channels == 1 {
            return Ok(g);
        }
        let (h, w) = (self.cfg.height as i64, self.cfg.width as i64);
        g.f_expand([3, h, w], false)
            .and_then(|t| t.f_contiguous())
            .map_err(torch_err("replicating a grey canvas"))
    }
    fn channels(&self) -> i64 {
        self.cfg.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten synthetic "digits": filled rectangles of different aspect, labelled 0..9.
    pub(crate) fn fake_digits() -> (Tensor, Tensor) {
        let mut px = vec![0f32; 10 * 28 * 28];
        for d in 0..10usize {
            let (w, h) = (6 + d, 20);
            for y in 4..4 + h {
                for x in 8..8 + w {
                    px[d * 784 + y * 28 + x] = 1.0;
                }
            }
        }
        (
            Tensor::from_slice(&px).view([10, 1, 28, 28]),
            Tensor::from_slice(&(0..10i64).collect::<Vec<_>>()),
        )
    }

    #[test]
    fn layouts_are_deterministic_and_inside() {
        let (x, y) = fake_digits();
        let cfg = MnistDetConfig {
            train_images: 20,
            ..MnistDetConfig::default()
        };
        let a = MnistDet::from_digits(&x, &y, MnistSplit::Train, &cfg).unwrap();
        let b = MnistDet::from_digits(&x, &y, MnistSplit::Train, &cfg).unwrap();
        assert_eq!(a.layouts, b.layouts);
        let t = MnistDet::from_digits(&x, &y, MnistSplit::Test, &cfg).unwrap();
        assert_ne!(a.layouts[0], t.layouts[0]);
        for i in 0..a.len() {
            let r = a.record(i).unwrap();
            assert!(r.boxes.len() <= 8);
            for bx in &r.boxes {
                assert!(bx[0] >= 0.0 && bx[1] >= 0.0 && bx[2] <= 256.0 && bx[3] <= 256.0);
            }
        }
        let bad = MnistDetConfig {
            channels: 2,
            ..cfg.clone()
        };
        assert!(MnistDet::from_digits(&x, &y, MnistSplit::Train, &bad).is_err());
        let wrong = Tensor::zeros([10, 1, 27, 28], (tch::Kind::Float, tch::Device::Cpu));
        assert!(MnistDet::from_digits(&wrong, &y, MnistSplit::Train, &cfg).is_err());
        assert!(MnistDet::from_digits(&x, &(y + 5), MnistSplit::Train, &cfg).is_err());
    }
}
