//! One flat buffer set of [`super::AdamW`]: the parameters of one (group, dtype, device)
//! packed into a 1-D buffer `p` (each variable `set_data` to a view of it), the moments `m`,
//! `v`, and scratch `g` (gathered gradients) and `sq` (g*g, then the denominator).
//!
//! The update runs per *segment*: a run of consecutive parameters of about `target`
//! elements (a larger parameter is a segment on its own). On a GPU the target is unbounded,
//! so a bucket is one segment and a step is ~10 launches. On the CPU, where launches are
//! cheap but the update is memory-bound, segments of ~2^18 elements keep the ~8 passes of a
//! segment in cache (one pass over the whole ViT-Tiny buffer is 23 MB) while still batching
//! small tensors; a one-parameter segment reads its `.grad` in place instead of copying it.

use super::{adamw_update, GroupSpec, Hyper};
use crate::error::{Result, TrainError};
use tch::{Device, Kind, Tensor};

/// Default segment size on the CPU, in elements (see the module docs; measured on the
/// ViT-Tiny bench, 2 cores).
pub(crate) const CPU_SEGMENT_ELEMS: i64 = 1 << 18;

#[derive(Debug)]
pub(super) struct Entry {
    pub name: String,
    pub var: Tensor,
    pub offset: i64,
    pub numel: i64,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    first: usize,
    end: usize,
    offset: i64,
    numel: i64,
}

/// Gradients of one segment, ready for the update.
pub(super) struct Gathered {
    seg: usize,
    pub g: Tensor,
    tmp: Tensor,
    missing: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Bucket {
    pub spec: GroupSpec,
    pub kind: Kind,
    pub device: Device,
    pub entries: Vec<Entry>,
    segments: Vec<Segment>,
    pub m: Tensor,
    pub v: Tensor,
    p: Tensor,
    g: Tensor,
    sq: Tensor,
}

fn segments(entries: &[Entry], target: i64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match out.last_mut() {
            Some(s) if s.numel + e.numel <= target => {
                s.end = i + 1;
                s.numel += e.numel;
            }
            _ => out.push(Segment {
                first: i,
                end: i + 1,
                offset: e.offset,
                numel: e.numel,
            }),
        }
    }
    out
}

impl Bucket {
    pub fn build(
        spec: GroupSpec,
        kind: Kind,
        device: Device,
        params: Vec<(String, Tensor)>,
    ) -> Result<Self> {
        let total: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
        let p = Tensor::f_zeros([total], (kind, device))?;
        let mut entries = Vec::with_capacity(params.len());
        let mut offset = 0;
        let _guard = tch::no_grad_guard();
        for (name, mut var) in params {
            let numel = var.numel() as i64;
            let shape = var.size();
            let mut view = p.f_narrow(0, offset, numel)?.f_view(shape.as_slice())?;
            view.f_copy_(&var)?;
            var.set_data(&view);
            entries.push(Entry {
                name,
                var,
                offset,
                numel,
                shape,
            });
            offset += numel;
        }
        let zeros = || Tensor::f_zeros([total], (kind, device));
        let (m, v, g, sq) = (zeros()?, zeros()?, zeros()?, zeros()?);
        let target = if device == Device::Cpu {
            CPU_SEGMENT_ELEMS
        } else {
            i64::MAX
        };
        let segments = segments(&entries, target);
        Ok(Bucket {
            spec,
            kind,
            device,
            entries,
            segments,
            m,
            v,
            p,
            g,
            sq,
        })
    }

    /// Re-cuts the segments; `target <= 0` means one segment for the whole bucket.
    pub fn set_segment_elems(&mut self, target: i64) {
        self.segments = segments(&self.entries, if target <= 0 { i64::MAX } else { target });
    }

    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// View of the slice of `t` (a flat buffer of this bucket) holding entry `e`.
    pub fn slice(t: &Tensor, e: &Entry) -> Result<Tensor> {
        Ok(t.f_narrow(0, e.offset, e.numel)?
            .f_view(e.shape.as_slice())?)
    }

    /// Errors if a variable no longer views its slot of the flat buffer.
    pub fn check_linked(&self) -> Result<()> {
        let base = self.p.data_ptr() as usize;
        let elt = self.kind.elt_size_in_bytes();
        for e in &self.entries {
            if e.var.data_ptr() as usize != base + e.offset as usize * elt {
                return Err(TrainError::ParamDetached {
                    name: e.name.clone(),
                    offset: e.offset,
                });
            }
        }
        Ok(())
    }

    /// Segment indices, for the callers' loops.
    pub fn segment_ids(&self) -> std::ops::Range<usize> {
        0..self.segments.len()
    }

    /// Gathers the gradients of segment `seg`; `None` when none of its parameters has one.
    /// With `in_place`, a one-parameter segment uses the `.grad` tensor itself (read only).
    pub fn gather(&self, seg: usize, in_place: bool) -> Result<Option<Gathered>> {
        let s = self.segments[seg];
        let ents = &self.entries[s.first..s.end];
        let g_slice = self.g.f_narrow(0, s.offset, s.numel)?;
        if in_place && ents.len() == 1 {
            let grad = ents[0].var.grad();
            if !grad.defined() {
                return Ok(None);
            }
            if grad.is_contiguous() && grad.kind() == self.kind {
                return Ok(Some(Gathered {
                    seg,
                    g: grad.f_view([-1])?,
                    tmp: g_slice,
                    missing: vec![],
                }));
            }
        }
        let mut parts = Vec::with_capacity(ents.len());
        let mut missing = Vec::new();
        for (i, e) in ents.iter().enumerate() {
            let grad = e.var.grad();
            if grad.defined() {
                parts.push(grad.f_reshape([-1])?);
            } else {
                missing.push(s.first + i);
                parts.push(Tensor::f_zeros([e.numel], (self.kind, self.device))?);
            }
        }
        if missing.len() == ents.len() {
            return Ok(None);
        }
        if parts.len() == 1 {
            g_slice.shallow_clone().f_copy_(&parts[0])?;
        } else {
            let _ = Tensor::f_cat_out(&g_slice, &parts, 0)?;
        }
        Ok(Some(Gathered {
            seg,
            g: g_slice.shallow_clone(),
            tmp: g_slice,
            missing,
        }))
    }

    /// The AdamW update of one gathered segment. Parameters without a gradient keep their
    /// value and moments, as in torch.
    pub fn update(&mut self, gathered: &Gathered, h: Hyper) -> Result<()> {
        let s = self.segments[gathered.seg];
        let mut saved = Vec::with_capacity(gathered.missing.len());
        for &i in &gathered.missing {
            let e = &self.entries[i];
            let mut copies = Vec::with_capacity(3);
            for t in [&self.p, &self.m, &self.v] {
                copies.push(Self::slice(t, e)?.f_detach_copy()?);
            }
            saved.push((i, copies));
        }
        let seg = |t: &Tensor| t.f_narrow(0, s.offset, s.numel);
        let (mut p, mut m, mut v, mut sq) =
            (seg(&self.p)?, seg(&self.m)?, seg(&self.v)?, seg(&self.sq)?);
        adamw_update(
            &mut p,
            &mut m,
            &mut v,
            &gathered.g,
            &mut sq,
            &gathered.tmp,
            h,
        )?;
        for (i, copies) in saved {
            let e = &self.entries[i];
            for (t, c) in [&self.p, &self.m, &self.v].into_iter().zip(&copies) {
                Self::slice(t, e)?.f_copy_(c)?;
            }
        }
        Ok(())
    }
}
