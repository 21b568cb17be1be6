//! The Rust half of the side-by-side contrastive-nce timing (`benches/python/contrastive_bench.py`
//! does the same work in PyTorch eager).
//!
//! `contrastive_bench --model mi|ntxent --batch N --device cpu|cuda --iters N --warmup W
//! --threads T [--estimator infonce|nwj|js|smile] [--critic separable|concat]
//! [--steps-per-level S]` prints one JSON line of per-iteration wall times:
//! - `mi`: one iteration is the whole MI benchmark for one estimator (Poole et al. 2019: a
//!   fresh critic trained by Adam 5e-4 over MI 2, 4, 6, 8, 10 nats, `S` steps each; 4,000 in
//!   the paper, 20,000 steps in all), batch 64 by default;
//! - `ntxent`: one SimCLR step of a small encoder (MLP 784-512-128) at batch 256: two noisy
//!   views, NT-Xent at tau 0.5, backward, Adam step.

use anyhow::{bail, Result};
use contrastive_nce::benchmark::{self, BenchmarkConfig};
use contrastive_nce::losses::simclr_loss;
use contrastive_nce::{CriticConfig, CriticKind, Estimator};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// One side-by-side contrastive timing: the MI benchmark or an NT-Xent step.
#[derive(clap::Parser, Debug)]
#[command(
    about = "MI benchmark or SimCLR NT-Xent step timing, the Rust half of benches/python/contrastive_bench.py"
)]
struct Cli {
    #[command(flatten)]
    step: benches::StepFlags,
    /// The MI estimator (`--model mi`): infonce, nwj, js or smile.
    #[arg(long, default_value = "infonce")]
    estimator: String,
    /// The critic (`--model mi`).
    #[arg(long, default_value = "separable")]
    critic: String,
    /// Optimiser steps per MI level (`--model mi`).
    #[arg(long, default_value_t = 4000)]
    steps_per_level: usize,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let (estimator, critic, steps) = (cli.estimator, cli.critic, cli.steps_per_level);
    let a = cli.step.resolve("mi", 64)?;
    let times = match a.model.as_str() {
        "mi" => {
            let est = match estimator.as_str() {
                "infonce" => Estimator::InfoNce,
                "nwj" => Estimator::Nwj,
                "js" => Estimator::Js,
                "smile" => Estimator::Smile { clip: Some(1.0) },
                other => bail!("--estimator: expected infonce, nwj, js or smile, got {other}"),
            };
            let kind = match critic.as_str() {
                "separable" => CriticKind::Separable,
                "concat" => CriticKind::Concat,
                other => bail!("--critic: expected separable or concat, got {other}"),
            };
            let cfg = BenchmarkConfig {
                batch_size: a.batch,
                steps_per_level: steps,
                critic: CriticConfig {
                    kind,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut seed = 0;
            benches::time_steps(a.device, a.warmup, a.iters, || {
                seed += 1;
                benchmark::run(&cfg, est, a.device, seed, &mut |_| {})?;
                Ok(())
            })?
        }
        "ntxent" => {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(a.device);
            let root = vs.root();
            let enc = nn::seq()
                .add(nn::linear(&root / "fc1", 784, 512, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(&root / "fc2", 512, 128, Default::default()));
            let mut opt = train_kit::AdamW::with_single_group(
                &vs,
                train_kit::AdamWConfig {
                    lr: 1e-3,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )?;
            let x = Tensor::rand([a.batch, 784], (Kind::Float, a.device));
            benches::time_steps(a.device, a.warmup, a.iters, || {
                let v1 = &x + Tensor::randn_like(&x) * 0.1;
                let v2 = &x + Tensor::randn_like(&x) * 0.1;
                let loss = simclr_loss(&enc.forward(&v1), &enc.forward(&v2), 0.5)?;
                opt.zero_grad();
                loss.backward();
                opt.step()?;
                Ok(())
            })?
        }
        other => bail!("--model: expected mi or ntxent, got {other}"),
    };
    let median = benches::median(&times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust", "model": a.model, "batch": a.batch, "estimator": estimator,
            "critic": critic, "steps_per_level": steps,
            "device": format!("{:?}", a.device), "threads": tch::get_num_threads(),
            "times_s": times, "median_s": median,
        })
    );
    Ok(())
}
