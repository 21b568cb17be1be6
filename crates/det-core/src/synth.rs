//! Seeded synthetic detection data for tests and benchmarks: COCO-like ground truth (box sizes
//! spanning the small/medium/large ranges, crowd regions, images without annotations) and
//! detections (jittered copies of the ground truth, confusions and random false positives, with
//! coarse scores that tie). The generator is splitmix64, so a seed gives the same files on
//! every machine.

use crate::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoDetection, CocoImage};

/// splitmix64 (Steele et al. 2014): tiny, seedable, identical everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform integer in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Sizes of a synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SynthSpec {
    /// Number of images.
    pub images: usize,
    /// Number of categories (ids 1..=categories).
    pub categories: usize,
    /// Ground-truth boxes in all, spread over the images.
    pub ground_truth: usize,
    /// Detections per image (before some images are left without any).
    pub detections_per_image: usize,
    /// The seed of the splitmix64 generator.
    pub seed: u64,
}

impl SynthSpec {
    /// COCO val2017-sized: 5,000 images, 80 categories, 36,000 boxes, 100 detections per image.
    pub fn coco_sized() -> Self {
        SynthSpec {
            images: 5000,
            categories: 80,
            ground_truth: 36_000,
            detections_per_image: 100,
            seed: 2017,
        }
    }
}

fn random_box(r: &mut SplitMix64) -> [f64; 4] {
    // log-uniform sizes 4..400 px: about a third each small / medium / large by area
    let w = (4f64.ln() + r.uniform() * (400f64.ln() - 4f64.ln())).exp();
    let h = w * (0.5 + r.uniform());
    let x = r.uniform() * (640.0 - w).max(1.0);
    let y = r.uniform() * (480.0 - h).max(1.0);
    // two decimals, like real annotation files
    [x, y, w, h].map(|v| (v * 100.0).round() / 100.0)
}

/// Generates ground truth and detections for `spec`.
pub fn coco_like(spec: &SynthSpec) -> (CocoDataset, Vec<CocoDetection>) {
    let mut r = SplitMix64::new(spec.seed);
    let n_img = spec.images.max(1);
    let n_cat = spec.categories.max(1);
    let images: Vec<CocoImage> = (0..n_img)
        .map(|i| CocoImage {
            id: i as i64 + 1,
            file_name: Some(format!("{:012}.jpg", i + 1)),
            width: Some(640),
            height: Some(480),
        })
        .collect();
    let categories: Vec<CocoCategory> = (0..n_cat)
        .map(|c| CocoCategory {
            id: c as i64 + 1,
            name: format!("class{}", c + 1),
            supercategory: None,
        })
        .collect();
    // 1% of the images get no annotations at all.
    let annotated: Vec<usize> = (0..n_img).filter(|i| i % 100 != 7).collect();
    let mut per_image: Vec<Vec<usize>> = vec![Vec::new(); n_img];
    let mut annotations = Vec::with_capacity(spec.ground_truth);
    for a in 0..spec.ground_truth {
        let img = annotated[r.below(annotated.len() as u64) as usize];
        let bbox = random_box(&mut r);
        let crowd = r.uniform() < 0.01;
        // segment area below the box area, as for real masks
        let area = ((bbox[2] * bbox[3] * (0.6 + 0.4 * r.uniform())) * 100.0).round() / 100.0;
        per_image[img].push(annotations.len());
        annotations.push(CocoAnnotation {
            id: a as i64 + 1,
            image_id: img as i64 + 1,
            category_id: r.below(n_cat as u64) as i64 + 1,
            bbox,
            area,
            iscrowd: crowd,
        });
    }
    let mut dets = Vec::with_capacity(n_img * spec.detections_per_image);
    for (img, anns) in per_image.iter().enumerate() {
        if img % 100 == 13 {
            continue; // 1% of the images without detections
        }
        for _ in 0..spec.detections_per_image {
            let (bbox, cat) = if !anns.is_empty() && r.uniform() < 0.5 {
                let g = &annotations[anns[r.below(anns.len() as u64) as usize]];
                let [x, y, w, h] = g.bbox;
                let j = |r: &mut SplitMix64| (r.uniform() - 0.5) * 0.4;
                let b = [
                    x + j(&mut r) * w,
                    y + j(&mut r) * h,
                    w * (1.0 + j(&mut r)),
                    h * (1.0 + j(&mut r)),
                ];
                let cat = if r.uniform() < 0.1 {
                    r.below(n_cat as u64) as i64 + 1
                } else {
                    g.category_id
                };
                (b.map(|v| (v * 100.0).round() / 100.0), cat)
            } else {
                (random_box(&mut r), r.below(n_cat as u64) as i64 + 1)
            };
            dets.push(CocoDetection {
                image_id: img as i64 + 1,
                category_id: cat,
                bbox,
                score: (r.uniform() * 1000.0).round() / 1000.0,
            });
        }
    }
    (
        CocoDataset {
            images,
            annotations,
            categories,
        },
        dets,
    )
}

/// `n` random `xyxy` boxes in a 1000 x 1000 image (sizes 8..128) with scores in `[0, 1)`, as
/// f32 — the NMS benchmark's input (`benches/python/det_bench.py` draws the same numbers).
pub fn nms_boxes(n: usize, seed: u64) -> (Vec<[f32; 4]>, Vec<f32>) {
    let mut r = SplitMix64::new(seed);
    let mut boxes = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for _ in 0..n {
        let x = r.uniform() * 1000.0;
        let y = r.uniform() * 1000.0;
        let w = 8.0 + r.uniform() * 120.0;
        let h = 8.0 + r.uniform() * 120.0;
        boxes.push([x as f32, y as f32, (x + w) as f32, (y + h) as f32]);
        scores.push(r.uniform() as f32);
    }
    (boxes, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_known_values_and_determinism() {
        // First outputs of splitmix64 seeded with 0 (reference C implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let spec = SynthSpec {
            images: 50,
            categories: 3,
            ground_truth: 300,
            detections_per_image: 10,
            seed: 1,
        };
        let (g1, d1) = coco_like(&spec);
        let (g2, d2) = coco_like(&spec);
        assert_eq!((g1.annotations.len(), d1.len()), (300, 490));
        assert_eq!(g1, g2);
        assert_eq!(d1, d2);
        let mut g = g1.clone();
        g.validate().unwrap();
    }
}
