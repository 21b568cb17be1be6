//! The Rust half of the side-by-side OadTR timing (`benches/python/oad_bench.py` does the same
//! work in PyTorch eager on a transcription of the official model).
//!
//! `oad_bench --model thumos_tsn|thumos_kinetics|small --batch 128 --mode train|stream --device
//! cpu|cuda --dtype f32|bf16 --iters N --warmup W --threads T` prints one JSON line. `train` is
//! one training step on random windows: forward, OadTR's loss (current frame 1.0 + anticipation
//! 0.5, soft targets, ambiguous class ignored), backward, clipping at 1.0 and an AdamW step
//! (train-kit's flat AdamW). `stream` is one live frame: `OadStream::push` of one feature vector
//! (project one row into the ring buffer, encoder + decoder on the window); `--batch` is
//! ignored there. `--dtype bf16` runs the forward and the loss under CUDA bf16 autocast
//! (`torch.autocast("cuda", torch.bfloat16)` on the Python side; weights, gradients and AdamW
//! stay float32); on the CPU it is refused.

use anyhow::{bail, Result};
use oad_transformer::{oad_loss, OadConfig, OadStream, OadTR};
use tch::{nn, Kind, Tensor};

fn config(name: &str) -> Result<OadConfig> {
    Ok(match name {
        "thumos_tsn" => OadConfig::thumos_tsn(),
        "thumos_kinetics" => OadConfig::thumos_kinetics(),
        "small" => OadConfig::small(30, 8, 32),
        other => bail!("--model: expected thumos_tsn, thumos_kinetics or small, got {other}"),
    })
}

/// One side-by-side OadTR timing: a training step or one live frame.
#[derive(clap::Parser, Debug)]
#[command(
    about = "OadTR training step or live-frame timing, the Rust half of benches/python/oad_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// train: one training step on random windows; stream: one live frame.
    #[arg(long, default_value = "train", value_parser = ["train", "stream"])]
    mode: String,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let mode = cli.mode;
    let a = cli.step.resolve("thumos_tsn", 128)?;
    if a.bf16 && !a.device.is_cuda() {
        bail!(
            "--dtype bf16: expected --device cuda (CUDA bf16 autocast), got {:?}; \
             run the CPU comparison with --dtype f32",
            a.device
        );
    }
    tch::manual_seed(0);
    let cfg = config(&a.model)?;
    let vs = nn::VarStore::new(a.device);
    let model = OadTR::new(&vs.root(), &cfg)?;
    let (c, q) = (cfg.num_classes, cfg.num_queries());
    let times = if mode == "train" {
        let x = Tensor::randn(
            [a.batch, cfg.enc_steps, cfg.feature_dim],
            (Kind::Float, a.device),
        );
        let labels = |shape: &[i64]| {
            Tensor::randint(c, shape, (Kind::Int64, a.device))
                .one_hot(c)
                .to_kind(Kind::Float)
        };
        let (cur, fut) = (labels(&[a.batch]), labels(&[a.batch, q]));
        let groups = train_kit::ParamGroup::decay_no_decay(&vs, 1e-4);
        let mut opt = train_kit::AdamW::new(
            &vs,
            groups,
            train_kit::AdamWConfig {
                lr: 1e-4,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )?;
        let vars = vs.trainable_variables();
        benches::time_steps(a.device, a.warmup, a.iters, || {
            let l = train_kit::autocast_bf16(a.bf16, || -> Result<Tensor> {
                let out = model.forward_t(&x, true)?;
                Ok(oad_loss(&cfg, &out, &cur, &fut)?.total)
            })?;
            opt.zero_grad();
            l.backward();
            train_kit::clip_grad_norm(&vars, 1.0);
            opt.step()?;
            Ok(())
        })?
    } else {
        let feats = Tensor::randn([4096, cfg.feature_dim], (Kind::Float, a.device));
        let mut live = OadStream::new(&model);
        let mut i = 0i64;
        benches::time_steps(a.device, a.warmup, a.iters, || {
            let step = train_kit::autocast_bf16(a.bf16, || live.push(&feats.get(i % 4096)))?;
            drop(step);
            i += 1;
            Ok(())
        })?
    };
    let median = benches::median(&times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "mode": mode,
            "device": format!("{:?}", a.device), "bf16": a.bf16,
            "threads": tch::get_num_threads(), "times_s": times, "median_s": median,
            "params": OadTR::num_params(&vs),
        })
    );
    Ok(())
}
