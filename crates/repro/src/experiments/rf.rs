//! Receptive-field claims (rf-calc): the published table and the effective receptive field.
//!
//! (a) `rf.table`: every row of google-research/receptive_field's table (TF-Slim nets, every
//!     end-point, input size unknown / 224 / 321: size, effective stride, effective padding)
//!     recomputed from rf-calc's presets, with torchvision's ResNets beside TF-Slim's.
//! (b) `rf.erf`: Luo et al.'s effective receptive field of random ReLU conv stacks of growing
//!     depth, and of a small CNN before and after training on real MNIST.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Instant;
#[cfg(test)]
use tch::Device;
use tch::{nn, nn::Module, Kind, Tensor};

use rf_calc::erf::{erf_of, random_erf, Activation, Erf, ErfConfig, ErfNet, NetConfig};
use rf_calc::erf_stats::MASS;
use rf_calc::reference::{check_all, HEADLINE};
use rf_calc::{analyze, draw, presets, GraphBuilder, Op, Options, Padding};

use super::mnist::{normalize, train_classifier, Recipe, Split};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::report::Mode;

// The measurements the tolerances below check.
const ROWS_EXACT: &str = "every published row exact (size, stride, padding incl. `None`)";
const AUTOGRAD_EQUAL: &str =
    "autograd's gradient support equals the computed field for resnet18/50 and resnet_v1_50";
const MIN_R2: &str = "Gaussian R^2, lowest over depths";
const BELOW_THEORY: &str = "effective size (95.45% mass) < theoretical at all depths";
const GROWING: &str = "effective size increasing with depth";
const SHRINKING: &str = "fraction (effective / theoretical) decreasing with depth";
const SLOPE: &str = "log-log slope of sigma vs depth";
const OUTSIDE: &str = "gradient mass outside the theoretical field";
const TRAINED_FRACTION: &str = "trained CNN: fraction";

/// The claims of this module, in report order.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "rf.table",
            claim: "Receptive-field size, effective stride and effective padding of every \
                    end-point of the TF-Slim nets (AlexNet, VGG, Inception v2-v4, \
                    Inception-ResNet v2, MobileNet v1, ResNet v1/v2 50-200) at unknown, 224 and \
                    321 input sizes equal the published table; torchvision ResNets differ \
                    because they stride in the first block of a stage",
            source: "Araujo, Norris, Sim 2019, Computing Receptive Fields of CNNs, Distill \
                     (doi:10.23915/distill.00021); google-research/receptive_field README and \
                     RECEPTIVE_FIELD_TABLE.md (commit f12ae8e)",
            paper_value: "e.g. alexnet_v2 195/32/64, vgg_16 212/32/90, resnet_v1_50 483/32/239, \
                          inception_resnet_v2 3039/32/1482 (all rows of the table)",
            tolerance: Tolerance::new([Bound::holds(ROWS_EXACT), Bound::holds(AUTOGRAD_EQUAL)])
                .note("exact"),
            smoke_tolerance: None,
            full_needs: None,
            run: run_table,
        },
        Claim {
            id: "rf.erf",
            claim: "The effective receptive field (mean |d centre output / d input|) is \
                    Gaussian-like, a fraction of the theoretical one, and grows with depth more \
                    slowly than the theoretical one (~sqrt of the depth), in random ReLU conv \
                    stacks; a small CNN trained on MNIST keeps it a fraction of the theory",
            source: "Luo, Li, Urtasun, Zemel 2016, Understanding the Effective Receptive Field \
                     in Deep CNNs, NIPS (arXiv:1701.04128), Sec. 2-4, Fig. 1, Table 1",
            paper_value: "Gaussian ERF, ERF/TRF shrinks as 1/sqrt(n), ERF grows with training",
            tolerance: Tolerance::new([
                Bound::at_least(MIN_R2, 0.9),
                Bound::holds(BELOW_THEORY),
                Bound::holds(GROWING),
                Bound::holds(SHRINKING),
                Bound::in_range(SLOPE, 0.3, 0.7),
                Bound::below(OUTSIDE, 1e-9),
                Bound::below(TRAINED_FRACTION, 1.0),
            ]),
            smoke_tolerance: None,
            full_needs: None,
            run: run_erf,
        },
    ]
}

// ------------------------------------------------------------------ rf.table

fn run_table(ctx: &Ctx) -> Result<Outcome> {
    let checks = check_all()?;
    let exact = checks.iter().filter(|c| c.exact).count();
    let networks: std::collections::BTreeSet<&str> = checks
        .iter()
        .map(|c| c.published.network.as_str())
        .collect();
    let rows: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({
                "network": c.published.network, "resolution": c.published.resolution,
                "endpoint": c.published.endpoint,
                "published": [c.published.rf, c.published.stride, c.published.padding],
                "ours": c.ours.map(|(r, s, p)| json!([r, s, p])), "exact": c.exact, "error": c.error,
            })
        })
        .collect();
    let mut headline = Vec::new();
    for (net, ep, rf, s, p) in HEADLINE {
        let ours = checks
            .iter()
            .find(|c| {
                c.published.network == net
                    && c.published.resolution == Some(224)
                    && c.published.node() == ep
            })
            .and_then(|c| c.ours);
        headline
            .push(json!({"network": net, "endpoint": ep, "published": [rf, s, p], "ours": ours}));
    }
    // torchvision beside TF-Slim: same depth, stride in the first block of a stage.
    let mut beside = Vec::new();
    let mut series = Vec::new();
    for (slim, tv) in [
        (Some("resnet_v1_50"), "resnet50"),
        (Some("resnet_v1_101"), "resnet101"),
        (Some("resnet_v1_152"), "resnet152"),
        (None, "resnet18"),
        (None, "resnet34"),
    ] {
        let stages = |name: &str, eps: [&str; 4]| -> Result<Vec<(i64, i64, Option<i64>)>> {
            let a = analyze(&presets::by_name(name)?, Options::input([224, 224]))?;
            eps.iter()
                .map(|e| {
                    let r = a.node(e)?.rf[0];
                    Ok((r.size, r.stride.num, r.padding))
                })
                .collect()
        };
        let t = stages(tv, ["layer1", "layer2", "layer3", "layer4"])?;
        series.push(train_kit::Series::new(
            format!("torchvision {tv}"),
            t.iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, v.0 as f64))
                .collect(),
        ));
        let s = match slim {
            Some(n) => {
                let s = stages(n, ["block1", "block2", "block3", "block4"])?;
                series.push(train_kit::Series::new(
                    format!("TF-Slim {n}"),
                    s.iter()
                        .enumerate()
                        .map(|(i, v)| ((i + 1) as f64, v.0 as f64))
                        .collect(),
                ));
                Some(s)
            }
            None => None,
        };
        beside.push(json!({"torchvision": tv, "tf_slim": slim, "at_224_rf_stride_padding": {"torchvision": t, "tf_slim": s}}));
    }
    let plot = "rf_by_stage.png";
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "Receptive field at the end of each ResNet stage (224 input)",
        "stage",
        "receptive field (pixels)",
        &series,
    )?;
    // The receptive fields of a few units over the input, both conventions.
    let mut plots = vec![plot.to_owned()];
    for (name, node) in [("resnet_v1_50", "block2"), ("resnet50", "layer2")] {
        let a = analyze(&presets::by_name(name)?, Options::input([224, 224]))?;
        let file = format!("units_{name}_{node}.png");
        let n = a.node(node)?;
        draw::units_png(
            &ctx.out_dir.join(&file),
            &draw::checkerboard([224, 224]),
            n,
            &[[0, 0], [7, 7], [13, 13]],
        )
        .with_context(|| format!("drawing {file}"))?;
        plots.push(file);
    }
    // Independent check of the presets that have no published row (torchvision) and of one
    // that has: autograd's gradient support of a linear, average-pooled version of the net
    // equals the theoretical receptive field of the centre unit.
    let linear = ErfConfig {
        inits: 1,
        batch: 1,
        seed: ctx.seed,
        device: ctx.device,
        net: NetConfig {
            in_channels: 1,
            width: 4,
            activation: Activation::Linear,
            max_pool_as_avg: true,
        },
    };
    let mut autograd = Vec::new();
    let mut autograd_ok = true;
    for (name, node, side) in [
        ("resnet18", "layer4", 480),
        ("resnet50", "layer4", 448),
        ("resnet_v1_50", "block4", 545),
    ] {
        let e = random_erf(&presets::by_name(name)?, node, [side, side], &linear)?;
        let support = [e.stats.h.support, e.stats.w.support];
        let inside = e.theoretical.iter().all(|b| b[0] >= 0 && b[1] < side);
        let ok = inside && support == [Some(e.theoretical[0]), Some(e.theoretical[1])];
        autograd_ok &= ok;
        autograd.push(
            json!({"net": name, "node": node, "input": side, "unit": e.unit,
            "theoretical": e.theoretical, "gradient_support": support, "equal": ok}),
        );
    }
    let r50 = |name: &str, ep: &str| -> Result<i64> {
        Ok(analyze(&presets::by_name(name)?, Options::default())?
            .node(ep)?
            .rf[0]
            .size)
    };
    let (slim50, tv50) = (r50("resnet_v1_50", "block4")?, r50("resnet50", "layer4")?);
    Ok(Outcome {
        value: exact as f64 / checks.len().max(1) as f64,
        value_text: format!(
            "{exact}/{} published rows exact ({} networks x unknown/224/321); resnet_v1_50 \
             {slim50} vs torchvision resnet50 {tv50}; autograd support = theory: {}",
            checks.len(),
            networks.len(),
            if autograd_ok { "yes" } else { "NO" }
        ),
        measured: Measured::new()
            .flag(ROWS_EXACT, exact == checks.len() && !checks.is_empty())
            .flag(AUTOGRAD_EQUAL, autograd_ok),
        skipped: None,
        plots,
        details: json!({
            "rows": rows,
            "headline_224": headline,
            "autograd_support_check": autograd,
            "torchvision_beside_tf_slim": beside,
            "why_they_differ": "TF-Slim (resnet_utils.py) strides in the last unit of a block, \
                torchvision in the 3x3 of the first block of the next stage: the 3x3 convs of \
                ResNet-50 see input strides 4,4,4 | 8,8,8,8 | 16 x6 | 32 x3 in TF-Slim but \
                4,4,4 | 4,8,8,8 | 8,16 x5 | 16,32,32 in torchvision, so three of them add \
                2x(8-4) + 2x(16-8) + 2x(32-16) = 56 pixels fewer: 483 - 56 = 427. Paddings \
                differ too: SAME (input-size dependent) against explicit symmetric padding.",
        }),
    })
}

// ------------------------------------------------------------------ rf.erf

fn erf_json(e: &Erf) -> Value {
    json!({
        "unit": e.unit, "theoretical_size": e.theoretical_size,
        "effective_size": [e.stats.h.size, e.stats.w.size],
        "sigma": [e.stats.h.sigma, e.stats.w.sigma],
        "fraction": e.fraction,
        "gaussian_r2": [e.stats.h.gaussian_r2, e.stats.w.gaussian_r2],
        "kurtosis": [e.stats.h.kurtosis, e.stats.w.kurtosis],
        "mass_in_theoretical": e.mass_in_theoretical,
    })
}

/// Box of the effective size around the centroid (pixel `j` spans `[j, j + 1)`).
fn effective_box(e: &Erf) -> [[f64; 2]; 2] {
    let b = |s: &rf_calc::erf_stats::AxisErf| {
        [
            s.centroid + 0.5 - s.size / 2.0,
            s.centroid + 0.5 + s.size / 2.0,
        ]
    };
    [b(&e.stats.h), b(&e.stats.w)]
}

fn panel(title: String, e: &Erf) -> draw::HeatPanel<'_> {
    draw::HeatPanel {
        title,
        map: &e.map,
        boxes: vec![
            (
                format!("theoretical {}", e.theoretical_size[0]),
                draw::pixel_box(e.theoretical),
            ),
            (
                format!(
                    "effective {:.1} ({:.0}% mass)",
                    e.stats.h.size,
                    100.0 * MASS
                ),
                effective_box(e),
            ),
        ],
    }
}

/// Least-squares slope of `ln y` against `ln x`.
fn log_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = points.iter().map(|(x, y)| (x.ln(), y.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

/// The MNIST CNN: 3x3 convs, two of stride 2 (theoretical field 21 of 28).
fn mnist_graph() -> Result<rf_calc::Graph> {
    let mut b = GraphBuilder::new("mnist_cnn");
    let mut x = b.input();
    for (i, s) in [1, 2, 1, 2, 1].iter().enumerate() {
        x = b.layer(
            &format!("conv{}", i + 1),
            Op::conv(3, *s, Padding::sym(1)),
            x,
        );
    }
    Ok(b.build()?)
}

struct Mnist {
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
}

/// Trains the CNN (+ global average pool + linear head) with the claims' shared MNIST loop
/// ([`train_classifier`] on train-kit's Trainer: AdamW without weight decay, warmup + cosine,
/// torch's generator seeded once by the caller) and returns its test accuracy after the last
/// epoch, 1000 images at a time. Checkpoints and `metrics.jsonl` go to `out_dir/train`
/// (removed first).
fn train_mnist(
    ctx: &Ctx,
    vs: &mut nn::VarStore,
    net: &ErfNet,
    data: &Mnist,
    epochs: usize,
) -> Result<f64> {
    let last = net.graph().id("conv5")?;
    let head = nn::linear(
        vs.root() / "head",
        net.channels(last),
        10,
        Default::default(),
    );
    let logits = |x: &Tensor, _train: bool| -> Result<Tensor> {
        let f = net
            .forward_to(x, last)?
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        Ok(head.forward(&f))
    };
    let groups = train_kit::ParamGroup::single(vs, 0.0);
    let mut opt = train_kit::AdamW::new(
        vs,
        groups,
        train_kit::AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let recipe = Recipe {
        epochs,
        batch_size: 128,
        drop_last: false,
        base_lr: 3e-3,
        min_lr: 1e-5,
        warmup_steps: |per_epoch, epochs| per_epoch * epochs / 10,
        log_every: 20,
        eval_every: 0,
        eval_batch: Some(1000),
        dir: "train".into(),
        label: "rf.erf mnist cnn".into(),
    };
    let train = Split {
        images: &data.train_x,
        labels: &data.train_y,
    };
    let test = Split {
        images: &data.test_x,
        labels: &data.test_y,
    };
    train_classifier(ctx, vs, &mut opt, train, test, &recipe, logits)?.last_accuracy()
}

fn run_erf(ctx: &Ctx) -> Result<Outcome> {
    let smoke = ctx.mode == Mode::Smoke;
    let depths: &[usize] = if smoke {
        &[2, 4, 8]
    } else {
        &[2, 4, 8, 16, 32]
    };
    let cfg = ErfConfig {
        inits: if smoke { 2 } else { 8 },
        batch: if smoke { 4 } else { 8 },
        seed: ctx.seed,
        device: ctx.device,
        net: NetConfig {
            in_channels: 1,
            width: if smoke { 8 } else { 32 },
            activation: Activation::Relu,
            max_pool_as_avg: false,
        },
    };
    let t0 = Instant::now();
    let mut sweep = Vec::new();
    for &d in depths {
        let g = presets::conv_stack(d, 3)?;
        let trf = 2 * d as i64 + 1;
        let side = trf + 16;
        let e = random_erf(&g, &format!("conv{d}"), [side, side], &cfg)?;
        sweep.push((d, e));
    }
    let sweep_seconds = t0.elapsed().as_secs_f64();
    // Checks of Luo et al.'s claims on the sweep.
    let mean = |v: [f64; 2]| (v[0] + v[1]) / 2.0;
    let sizes: Vec<f64> = sweep
        .iter()
        .map(|(_, e)| mean([e.stats.h.size, e.stats.w.size]))
        .collect();
    let fractions: Vec<f64> = sweep.iter().map(|(_, e)| mean(e.fraction)).collect();
    let sigmas: Vec<(f64, f64)> = sweep
        .iter()
        .map(|(d, e)| (*d as f64, mean([e.stats.h.sigma, e.stats.w.sigma])))
        .collect();
    let min_r2 = sweep
        .iter()
        .map(|(_, e)| e.stats.h.gaussian_r2.min(e.stats.w.gaussian_r2))
        .fold(f64::INFINITY, f64::min);
    let max_outside = sweep
        .iter()
        .map(|(_, e)| 1.0 - e.mass_in_theoretical)
        .fold(0.0, f64::max);
    let slope = log_slope(&sigmas);
    let growing = sizes.windows(2).all(|w| w[1] > w[0]);
    let shrinking = fractions.windows(2).all(|w| w[1] < w[0]);
    let fraction_below = fractions.iter().all(|f| *f < 1.0);

    // A small CNN on real MNIST, before and after training.
    let data = datasets::mnist::load("mnist", ctx.data_root.as_deref()).context("loading MNIST")?;
    let (data, epochs, probe) = match ctx.mode {
        Mode::Smoke => (data.subset_train(2000)?.subset_test(1000)?, 1, 64),
        _ => (data, 2, 512),
    };
    let data = Mnist {
        train_x: normalize(&data.train_images).to_device(ctx.device),
        train_y: data.train_labels.to_device(ctx.device),
        test_x: normalize(&data.test_images).to_device(ctx.device),
        test_y: data.test_labels.to_device(ctx.device),
    };
    let g = mnist_graph()?;
    let net_cfg = NetConfig {
        in_channels: 1,
        width: 32,
        activation: Activation::Relu,
        max_pool_as_avg: false,
    };
    let probe_x = data.test_x.narrow(0, 0, probe);
    tch::manual_seed(ctx.seed as i64);
    let mut vs = nn::VarStore::new(ctx.device);
    let net = ErfNet::new(&vs.root(), &g, [28, 28], &net_cfg)?;
    let before = erf_of(&net, "conv5", &probe_x)?;
    let t1 = Instant::now();
    let accuracy = train_mnist(ctx, &mut vs, &net, &data, epochs)?;
    let train_seconds = t1.elapsed().as_secs_f64();
    let after = erf_of(&net, "conv5", &probe_x)?;
    ensure!(
        accuracy > 0.5 || smoke,
        "the MNIST CNN did not learn ({accuracy})"
    );

    let panels: Vec<draw::HeatPanel> = sweep
        .iter()
        .map(|(d, e)| {
            panel(
                format!(
                    "depth {d}: ERF {:.1} / TRF {}",
                    mean([e.stats.h.size, e.stats.w.size]),
                    e.theoretical_size[0]
                ),
                e,
            )
        })
        .collect();
    draw::heatmap_png(&ctx.out_dir.join("erf_depth.png"), &panels)?;
    draw::heatmap_png(
        &ctx.out_dir.join("erf_mnist.png"),
        &[
            panel("MNIST CNN, random init".to_owned(), &before),
            panel(format!("trained ({:.1}% test)", 100.0 * accuracy), &after),
        ],
    )?;
    let curve = |f: &dyn Fn(&Erf) -> f64| {
        sweep
            .iter()
            .map(|(d, e)| (*d as f64, f(e)))
            .collect::<Vec<_>>()
    };
    train_kit::line_plot(
        &ctx.out_dir.join("erf_growth.png"),
        "Effective vs theoretical receptive field of random 3x3 ReLU stacks",
        "depth (layers)",
        "size (pixels)",
        &[
            train_kit::Series::new("theoretical", curve(&|e| e.theoretical_size[0] as f64)),
            train_kit::Series::new(
                "effective (95.45% mass)",
                curve(&|e| mean([e.stats.h.size, e.stats.w.size])),
            ),
            train_kit::Series::new(
                "4 sigma",
                curve(&|e| mean([e.stats.h.size_4sigma, e.stats.w.size_4sigma])),
            ),
        ],
    )?;
    train_kit::training_curves_png(
        &[(
            "MNIST CNN",
            &ctx.out_dir.join("train").join("metrics.jsonl"),
        )],
        &ctx.out_dir.join("mnist_training.png"),
        "rf.erf: the MNIST CNN's training",
    )?;
    let trained_fraction = mean(after.fraction);
    Ok(Outcome {
        value: slope,
        value_text: format!(
            "ERF/TRF {} at depths {:?}; sigma ~ depth^{slope:.2}; min Gaussian R^2 {min_r2:.3}; \
             MNIST CNN ERF {:.1} -> {:.1} px of TRF {} after training ({:.1}% test)",
            fractions
                .iter()
                .map(|f| format!("{f:.2}"))
                .collect::<Vec<_>>()
                .join("/"),
            depths,
            mean([before.stats.h.size, before.stats.w.size]),
            mean([after.stats.h.size, after.stats.w.size]),
            after.theoretical_size[0],
            100.0 * accuracy
        ),
        measured: Measured::new()
            .number(MIN_R2, min_r2)
            .flag(BELOW_THEORY, fraction_below)
            .flag(GROWING, growing)
            .flag(SHRINKING, shrinking)
            .number(SLOPE, slope)
            .number(OUTSIDE, max_outside)
            .number(TRAINED_FRACTION, trained_fraction),
        skipped: None,
        plots: vec![
            "erf_depth.png".to_owned(),
            "erf_growth.png".to_owned(),
            "erf_mnist.png".to_owned(),
            "mnist_training.png".to_owned(),
        ],
        details: json!({
            "sweep": sweep.iter().map(|(d, e)| json!({"depth": d, "erf": erf_json(e)})).collect::<Vec<_>>(),
            "sigma_log_log_slope": slope,
            "min_gaussian_r2": min_r2,
            "max_mass_outside_theoretical": max_outside,
            "effective_size_increasing": growing,
            "fraction_decreasing": shrinking,
            "sweep_recipe": {"kernel": 3, "activation": "relu", "width": cfg.net.width, "inits": cfg.inits,
                             "inputs_per_init": cfg.batch, "init": "Kaiming normal (fan-in), zero bias",
                             "input": "standard normal, side = theoretical + 16", "seconds": sweep_seconds},
            "mnist": {"untrained": erf_json(&before), "trained": erf_json(&after), "test_accuracy": accuracy,
                      "epochs": epochs, "train_examples": data.train_x.size()[0], "probe_images": probe,
                      "train_seconds": train_seconds,
                      "net": "5 conv 3x3 pad 1 (strides 1,2,1,2,1), width 32, ReLU, global average pool, linear 10",
                      "erf_grew_with_training": mean([after.stats.h.size, after.stats.w.size]) > mean([before.stats.h.size, before.stats.w.size])},
            "effective_size": "width of the central interval holding 95.45% of the gradient's marginal",
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::moved::{assert_same_weights, ctx, synthetic_mnist};

    /// `rf.erf`'s MNIST loop as it was before it moved onto train-kit's Trainer (the oracle
    /// of the move; the bar is left out).
    fn train_mnist_before(
        ctx: &Ctx,
        vs: &nn::VarStore,
        net: &ErfNet,
        data: &Mnist,
        epochs: usize,
    ) -> Result<f64> {
        let last = net.graph().id("conv5")?;
        let head = nn::linear(
            vs.root() / "head",
            net.channels(last),
            10,
            Default::default(),
        );
        let logits = |x: &Tensor| -> Result<Tensor> {
            let f = net
                .forward_to(x, last)?
                .mean_dim([2i64, 3].as_slice(), false, Kind::Float);
            Ok(head.forward(&f))
        };
        let groups = train_kit::ParamGroup::single(vs, 0.0);
        let adamw = train_kit::AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = train_kit::AdamW::new(vs, groups, adamw)?;
        let loader_cfg = datasets::loader::LoaderConfig {
            batch_size: 128,
            seed: ctx.seed,
            ..Default::default()
        };
        let loader = datasets::loader::Loader::new(&data.train_x, &data.train_y, loader_cfg)?;
        let steps = loader.batches_per_epoch() * epochs;
        let schedule = train_kit::Schedule::WarmupCosine {
            base_lr: 3e-3,
            min_lr: 1e-5,
            warmup_steps: steps / 10,
            total_steps: steps,
        };
        let mut step = 0;
        for epoch in 0..epochs {
            for batch in loader.epoch(epoch as u64) {
                let batch = batch?;
                opt.set_lr(schedule.lr_at(step));
                let loss = logits(&batch.images)?.cross_entropy_for_logits(&batch.labels);
                train_kit::check_finite(&loss, step as u64)?;
                opt.zero_grad();
                loss.backward();
                opt.step()?;
                step += 1;
            }
        }
        tch::no_grad(|| -> Result<f64> {
            let n = data.test_x.size()[0];
            let correct = logits(&data.test_x)?
                .argmax(-1, false)
                .eq_tensor(&data.test_y)
                .to_kind(Kind::Double)
                .sum(Kind::Double)
                .double_value(&[]);
            Ok(correct / n.max(1) as f64)
        })
    }

    #[test]
    fn the_trainer_loop_equals_the_loop_before_the_move() {
        let _lock = test_support::rng_lock();
        let m = synthetic_mnist(300, 50, 7);
        let data = Mnist {
            train_x: m.train_images,
            train_y: m.train_labels,
            test_x: m.test_images,
            test_y: m.test_labels,
        };
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path(), 4);
        let net_cfg = NetConfig {
            in_channels: 1,
            width: 8,
            activation: Activation::Relu,
            max_pool_as_avg: false,
        };
        let g = mnist_graph().unwrap();
        let build = || {
            tch::manual_seed(9);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = ErfNet::new(&vs.root(), &g, [28, 28], &net_cfg).unwrap();
            (vs, net)
        };
        let (vs_before, net_before) = build();
        let acc_before = train_mnist_before(&ctx, &vs_before, &net_before, &data, 2).unwrap();
        let (mut vs_after, net_after) = build();
        let acc_after = train_mnist(&ctx, &mut vs_after, &net_after, &data, 2).unwrap();
        assert_same_weights(&vs_before, &vs_after);
        assert_eq!(acc_before, acc_after);
    }

    #[test]
    fn log_slope_of_a_power_law() {
        let pts: Vec<(f64, f64)> = [1.0f64, 2.0, 4.0, 8.0]
            .iter()
            .map(|x| (*x, 3.0 * x.sqrt()))
            .collect();
        assert!((log_slope(&pts) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn mnist_cnn_sees_21_of_28_pixels() {
        let g = mnist_graph().unwrap();
        let a = analyze(&g, Options::input([28, 28])).unwrap();
        let c5 = a.node("conv5").unwrap();
        assert_eq!((c5.rf[0].size, c5.geom[0].out_size), (21, Some(7)));
    }
}
