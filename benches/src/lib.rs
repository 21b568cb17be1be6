//! Shared helpers for the benches: the device to run on, CUDA synchronisation for
//! `iter_custom`, and parameter sets (a ViT-like one and one of many small tensors) with
//! fixed gradients.

use tch::{nn, Device, Kind, Tensor};

/// CUDA device 0 when available, else the CPU.
pub fn bench_device() -> Device {
    if tch::Cuda::is_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// `cpu` or `cuda<N>`, for group names.
pub fn device_label(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda{i}"),
        Device::Cpu => "cpu".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Waits for queued CUDA work (no-op on the CPU), so `iter_custom` timings are real.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// `iters` calls of `f` between two device synchronisations: the measurement of criterion's
/// `iter_custom` for work queued on a GPU (on the CPU the synchronisations are no-ops).
pub fn timed(device: Device, iters: u64, mut f: impl FnMut()) -> std::time::Duration {
    sync(device);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    sync(device);
    start.elapsed()
}

fn var(path: nn::Path, name: &str, dims: &[i64]) {
    let _ = path.var(
        name,
        dims,
        nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
    );
}

/// A ViT-like parameter set (timm names): patch embedding, cls token, pos embedding,
/// `depth` blocks of {norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2} weights and
/// biases, final norm and a 1000-way head. d=192, depth=12 is ViT-Tiny (~5.7M params).
pub fn vit_like_store(device: Device, d: i64, depth: i64) -> nn::VarStore {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    var(&root / "patch_embed" / "proj", "weight", &[d, 3, 16, 16]);
    var(&root / "patch_embed" / "proj", "bias", &[d]);
    var(root.clone(), "cls_token", &[1, 1, d]);
    var(root.clone(), "pos_embed", &[1, 197, d]);
    for b in 0..depth {
        let blk = &root / "blocks" / b;
        for (sub, out, inp) in [
            ("attn.qkv", 3 * d, d),
            ("attn.proj", d, d),
            ("mlp.fc1", 4 * d, d),
            ("mlp.fc2", d, 4 * d),
        ] {
            let p = sub.split('.').fold(blk.clone(), |p, s| p / s);
            var(p.clone(), "weight", &[out, inp]);
            var(p, "bias", &[out]);
        }
        for norm in ["norm1", "norm2"] {
            var(&blk / norm, "weight", &[d]);
            var(&blk / norm, "bias", &[d]);
        }
    }
    var(&root / "norm", "weight", &[d]);
    var(&root / "norm", "bias", &[d]);
    var(&root / "head", "weight", &[1000, d]);
    var(&root / "head", "bias", &[1000]);
    vs
}

/// `n` tensors of `numel` elements each: launch-overhead-bound.
pub fn many_small_store(device: Device, n: i64, numel: i64) -> nn::VarStore {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    for i in 0..n {
        var(vs.root() / "p" / i, "weight", &[numel]);
    }
    vs
}

/// Number of elements over the trainable variables.
pub fn num_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Gives every trainable variable a fixed gradient (one backward of
/// `sum(0.01 p + 0.001 p^2)`); benches then never zero them.
pub fn fill_grads(vs: &nn::VarStore) {
    let mut loss = Tensor::zeros([], (Kind::Float, vs.device()));
    for p in vs.trainable_variables() {
        loss += (&p * 0.01 + &p * &p * 0.001).sum(Kind::Float);
    }
    loss.backward();
}

/// The settings of a side-by-side run, as [`StepFlags::resolve`] gives them: the flags its
/// Python twin takes too (`--model --batch --device cpu|cuda --dtype f32|bf16 --iters --warmup
/// --threads`).
#[derive(Debug, Clone)]
pub struct StepArgs {
    /// The model preset (e.g. `vit_base_patch16_224`).
    pub model: String,
    /// Images per step.
    pub batch: i64,
    /// Where the step runs.
    pub device: Device,
    /// Whether the step runs under bf16 autocast (CUDA).
    pub bf16: bool,
    /// Timed steps.
    pub iters: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// libtorch's CPU threads, when set.
    pub threads: Option<i32>,
}

/// The flags every side-by-side binary takes (clap, so each has `--help`), flattened into the
/// binary's own parser: `--model --batch --device cpu|cuda --dtype f32|bf16 --iters --warmup
/// --threads`. `--model` and `--batch` default per binary ([`StepFlags::resolve`]).
#[derive(Debug, Clone, clap::Args)]
pub struct StepFlags {
    /// Model preset (the binary's default when omitted).
    #[arg(long)]
    pub model: Option<String>,
    /// Items per step (the binary's default when omitted).
    #[arg(long)]
    pub batch: Option<i64>,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: Device,
    /// f32, or bf16 (CUDA autocast with bfloat16, as `torch.autocast("cuda", torch.bfloat16)`).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    pub dtype: String,
    /// Timed steps.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub iters: u64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// libtorch's CPU threads (libtorch's default when omitted).
    #[arg(long)]
    pub threads: Option<i32>,
}

impl StepFlags {
    /// The settings with this binary's default `model` and `batch` filled in; applies
    /// `--threads` and checks that CUDA is there when asked for.
    pub fn resolve(self, model: &str, batch: i64) -> anyhow::Result<StepArgs> {
        let a = StepArgs {
            model: self.model.unwrap_or_else(|| model.to_owned()),
            batch: self.batch.unwrap_or(batch),
            device: self.device,
            bf16: parse_bf16(&self.dtype)?,
            iters: self.iters as usize,
            warmup: self.warmup as usize,
            threads: self.threads,
        };
        if a.batch < 1 {
            anyhow::bail!("--batch must be >= 1, got {}", a.batch);
        }
        if let Some(t) = a.threads {
            tch::set_num_threads(t);
        }
        if a.device != Device::Cpu && !tch::Cuda::is_available() {
            anyhow::bail!("--device cuda but CUDA is not available to libtorch");
        }
        Ok(a)
    }
}

/// `--device` of the side-by-side binaries: train-kit's parser (`auto|cpu|cuda|cuda:N`).
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    Ok(train_kit::parse_device(s)?)
}

/// `--dtype` of the side-by-side binaries: `f32`, or `bf16` (CUDA autocast): whether bf16.
pub fn parse_bf16(s: &str) -> anyhow::Result<bool> {
    match s {
        "f32" => Ok(false),
        "bf16" => Ok(true),
        other => anyhow::bail!("--dtype: expected f32 or bf16, got {other}"),
    }
}

/// The median of `v` (the upper one for an even count, as the Python twins); NaN when empty:
/// the workspace's one median, `cvlab_util`'s.
pub use cvlab_util::median;

/// The medians of per-phase timings (`phases[i]` holds phase `names[i]`'s seconds, one per
/// timed step) as the `phases_s` object of a bench's JSON line, as the Python twins print it.
pub fn phase_medians(names: &[&str], phases: &[Vec<f64>]) -> serde_json::Value {
    names
        .iter()
        .zip(phases)
        .map(|(n, v)| (n.to_string(), median(v).into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Runs `step` `warmup` times untimed, then `iters` times, each timed by the wall clock with the
/// device synchronised after it (the Python twins time the same way). Returns the seconds.
pub fn time_steps(
    device: Device,
    warmup: usize,
    iters: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        step()?;
    }
    sync(device);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = std::time::Instant::now();
        step()?;
        sync(device);
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(times)
}
