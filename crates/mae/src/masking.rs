//! Per-sample masking by shuffling (official `random_masking`): `argsort` of per-patch noise
//! orders the patches, the first `int(L * (1 - ratio))` stay visible. Block and grid masking
//! (paper Table 1f) are noise too, so every strategy keeps the same count and shares one path.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::config::{check_ratio, MaskKind};
use crate::error::{MaeError, Result};

/// The result of masking a `[N, L, D]` sequence.
#[derive(Debug)]
pub struct Masked {
    /// The visible tokens in shuffled order, `[N, keep, D]`.
    pub visible: Tensor,
    /// 0 = visible, 1 = removed, in patch order, `[N, L]` float.
    pub mask: Tensor,
    /// The permutation that sorts the noise, `[N, L]` int64.
    pub ids_shuffle: Tensor,
    /// Its inverse: `ids_restore[ids_shuffle[i]] = i`, `[N, L]` int64.
    pub ids_restore: Tensor,
    /// `ids_shuffle[:, :keep]`.
    pub ids_keep: Tensor,
}

/// Checks a user-given noise tensor against `[n, l]`.
pub(crate) fn check_noise(noise: &Tensor, n: i64, l: i64) -> Result<()> {
    if noise.size() != [n, l] || !noise.is_floating_point() {
        return Err(MaeError::input(
            "masking noise",
            format!("[{n}, {l}] floating point (one value per patch)"),
            noise.size(),
        ));
    }
    Ok(())
}

/// Keeps the `keep` patches of lowest noise. `x` is `[N, L, D]`, `noise` `[N, L]` floating
/// point on `x`'s device.
pub fn mask_by_noise(x: &Tensor, noise: &Tensor, keep: i64) -> Result<Masked> {
    let size = x.size();
    if size.len() != 3 {
        return Err(MaeError::input("masking input", "[N, L, D]", size));
    }
    let (n, l, d) = (size[0], size[1], size[2]);
    check_noise(noise, n, l)?;
    if noise.device() != x.device() {
        return Err(MaeError::input(
            "masking noise",
            format!(
                "[{n}, {l}] on the tokens' device {:?} (got {:?})",
                x.device(),
                noise.device()
            ),
            noise.size(),
        ));
    }
    if keep < 1 || keep > l {
        return Err(MaeError::Config(format!(
            "keeping {keep} of {l} patches: expected 1 to {l}"
        )));
    }
    // Ascending: small noise is kept, large is removed.
    let ids_shuffle = noise.argsort(1, false);
    let ids_restore = ids_shuffle.argsort(1, false);
    let ids_keep = ids_shuffle.narrow(1, 0, keep);
    let visible = x.gather(
        1,
        &ids_keep.unsqueeze(-1).expand([n, keep, d], false),
        false,
    );
    // The official `ones; [:, :keep] = 0; gather(ids_restore)` is `ids_restore >= keep`.
    let mask = ids_restore.ge(keep).to_kind(x.kind().max_float());
    Ok(Masked {
        visible,
        mask,
        ids_shuffle,
        ids_restore,
        ids_keep,
    })
}

trait MaxFloat {
    fn max_float(self) -> Kind;
}

impl MaxFloat for Kind {
    /// The mask's kind: float32 unless the tokens are float64 (parity in double precision).
    fn max_float(self) -> Kind {
        if self == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        }
    }
}

/// Noise `[n, h * w]` on `device` whose argsort realises `kind` at `ratio` on an `h x w` grid.
/// Random masking is `U(0, 1)`; block and grid add 1 to the patches they remove, so those
/// sort last. Randomness comes from torch's generator (seeded per step for exact resume).
pub fn noise(
    kind: MaskKind,
    n: i64,
    grid: (i64, i64),
    ratio: f64,
    device: Device,
) -> Result<Tensor> {
    let (h, w) = grid;
    if n < 0 || h < 1 || w < 1 {
        return Err(MaeError::Config(format!(
            "masking noise for {n} images on a {h}x{w} grid: expected n >= 0 and a grid of at \
             least 1x1"
        )));
    }
    let l = h * w;
    let keep = check_ratio(l, ratio)?;
    let uniform = Tensor::rand([n, l], (Kind::Float, device));
    match kind {
        MaskKind::Random => Ok(uniform),
        MaskKind::Grid => {
            let removed: Vec<f32> = (0..l)
                .map(|i| {
                    if (i / w) % 2 == 0 && (i % w) % 2 == 0 {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            Ok(uniform + Tensor::from_slice(&removed).to(device).view([1, l]))
        }
        MaskKind::Block => {
            // One seed from torch's generator drives the (host-side) block sampler.
            let seed = Tensor::randint(i64::MAX, [n], (Kind::Int64, Device::Cpu));
            let mut removed = Vec::with_capacity(l as usize * n as usize);
            for i in 0..n {
                let mut rng = ChaCha8Rng::seed_from_u64(seed.int64_value(&[i]) as u64);
                removed.extend(block_mask(h, w, (l - keep) as usize, &mut rng));
            }
            Ok(uniform + Tensor::from_slice(&removed).to(device).view([n, l]))
        }
    }
}

/// BEiT's `MaskingGenerator` (min 16 patches per block, aspect in [0.3, 1/0.3]): rectangles are
/// added until `target` patches are covered or ten tries add nothing; never more than `target`.
/// Row-major `h * w` values, 1.0 = removed.
pub fn block_mask(h: i64, w: i64, target: usize, rng: &mut impl Rng) -> Vec<f32> {
    let (hu, wu) = (h as usize, w as usize);
    let mut mask = vec![0.0f32; hu * wu];
    let min_patches = 16.0f64.min(target as f64);
    let log_aspect = (0.3f64.ln(), (1.0f64 / 0.3).ln());
    let mut count = 0usize;
    while count < target {
        let max_patches = (target - count) as f64;
        let mut delta = 0usize;
        for _attempt in 0..10 {
            let (lo, hi) = if min_patches <= max_patches {
                (min_patches, max_patches)
            } else {
                (max_patches, min_patches)
            };
            let area = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            let aspect = rng.gen_range(log_aspect.0..log_aspect.1).exp();
            let bh = (area * aspect).sqrt().round() as usize;
            let bw = (area / aspect).sqrt().round() as usize;
            if bw >= wu || bh >= hu || bw == 0 || bh == 0 {
                continue;
            }
            let top = rng.gen_range(0..=hu - bh);
            let left = rng.gen_range(0..=wu - bw);
            let covered: usize = (top..top + bh)
                .flat_map(|r| (left..left + bw).map(move |c| r * wu + c))
                .filter(|&i| mask[i] > 0.0)
                .count();
            let new = bh * bw - covered;
            if new > 0 && new as f64 <= max_patches {
                for r in top..top + bh {
                    for c in left..left + bw {
                        if mask[r * wu + c] == 0.0 {
                            mask[r * wu + c] = 1.0;
                            delta += 1;
                        }
                    }
                }
            }
            if delta > 0 {
                break;
            }
        }
        if delta == 0 {
            break;
        }
        count += delta;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_mask_never_overshoots_and_makes_blocks() {
        let _rng = test_support::rng_lock();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for target in [10usize, 98, 147] {
            let m = block_mask(14, 14, target, &mut rng);
            let count = m.iter().filter(|&&v| v > 0.0).count();
            assert!(
                count <= target && count >= target / 2,
                "{count} of {target}"
            );
            // Blocks: most removed patches have a removed 4-neighbour.
            let neighbour = |i: usize| {
                let (r, c) = (i / 14, i % 14);
                [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)]
                    .iter()
                    .any(|(dr, dc)| {
                        let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                        (0..14).contains(&rr)
                            && (0..14).contains(&cc)
                            && m[(rr * 14 + cc) as usize] > 0.0
                    })
            };
            let isolated = (0..196).filter(|&i| m[i] > 0.0 && !neighbour(i)).count();
            assert!(isolated * 10 <= count, "{isolated} isolated of {count}");
        }
    }

    #[test]
    fn grid_noise_keeps_one_of_four() {
        let _rng = test_support::rng_lock();
        tch::manual_seed(0);
        let noise = noise(MaskKind::Grid, 2, (4, 4), 0.75, Device::Cpu).unwrap();
        let x = Tensor::zeros([2, 16, 1], (Kind::Float, Device::Cpu));
        let m = mask_by_noise(&x, &noise, 4).unwrap();
        let want = [0, 2, 8, 10];
        for b in 0..2 {
            let mut kept: Vec<i64> = (0..4).map(|j| m.ids_keep.int64_value(&[b, j])).collect();
            kept.sort();
            assert_eq!(kept, want);
        }
    }
}
