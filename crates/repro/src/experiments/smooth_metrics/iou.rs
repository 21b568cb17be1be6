//! `smooth.iou`: Lovasz-Softmax fine-tuning after per-pixel cross-entropy against
//! cross-entropy alone, on a small real segmentation target: MNIST digit masks (each pixel
//! above 0.35 of the 2x2-pooled image is its digit's class 1..10, the rest background 0), a
//! small fully convolutional net, measured in test mIoU (classes present, over all test pixels).

use anyhow::Result;
use serde_json::json;
use tch::{nn, Kind, Tensor};

use losses_smooth_metrics::{self as lsm, Classes, LovaszSoftmax, Recipe};

use super::{
    fit, load, mean, mean_series, paired, seeds, series, smoke_tolerance, Budget, PAIRED_NOTE,
};
use crate::claim::{Bound, Claim, Ctx, Measured, Outcome, Tolerance};
use crate::experiments::mnist::normalize;

const GAIN: &str = "Lovasz-Softmax fine-tuning: test mIoU gain over CE (mean over seeds)";
const CLASSES: i64 = 11;

pub(super) fn claim() -> Claim {
    Claim {
        id: "smooth.iou",
        claim: "Fine-tuning with the Lovasz-Softmax loss after cross-entropy raises the test \
                mIoU of a segmentation net over cross-entropy trained as long",
        source: "Berman, Rannen Triki, Blaschko 2018, The Lovasz-Softmax loss, CVPR (arXiv \
                 1705.08790), Sec. 3-4, Table 1 (Pascal VOC: +1.4 to +3.5 mIoU after CE)",
        paper_value: "mIoU up after CE pre-training (Pascal VOC, DeepLab)",
        tolerance: Tolerance::new([Bound::above(GAIN, 0.0).percent()]).note(PAIRED_NOTE),
        smoke_tolerance: smoke_tolerance(),
        full_needs: None,
        run,
    }
}

/// (train, test, cross-entropy epochs, metric epochs) in smoke, quick and full mode.
const BUDGETS: [[usize; 4]; 3] = [[512, 300, 1, 1], [3072, 1000, 4, 2], [20_000, 5000, 10, 5]];

const BATCH: usize = 64;

/// The side of the images and masks: MNIST average-pooled 2x2 (14 x 14), which keeps the
/// digits legible and the CPU runs short.
const SIDE: i64 = 14;

/// The inputs at [`SIDE`] pixels (MNIST-normalised) and the digit masks: class `label + 1`
/// where the pooled pixel is above 0.35, background 0 elsewhere.
fn images_and_masks(images: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
    let pooled = images.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
    let fg = pooled.squeeze_dim(1).gt(0.35).to_kind(Kind::Int64);
    (normalize(&pooled), fg * (labels.view([-1, 1, 1]) + 1))
}

/// A small FCN: 3x3 convs at 14, 7 and 4 pixels; per pixel, the fine features, the 7-pixel
/// ones upsampled, and the global average of the coarsest (the digit's identity, as in
/// PSPNet's global pooling), then a 1x1 classifier.
struct Fcn {
    c1: nn::Conv2D,
    c2: nn::Conv2D,
    c3: nn::Conv2D,
    c4: nn::Conv2D,
    head: nn::Conv2D,
}

impl Fcn {
    fn new(p: &nn::Path) -> Self {
        let conv = |name: &str, i, o, k, stride| {
            nn::conv2d(
                p / name,
                i,
                o,
                k,
                nn::ConvConfig {
                    stride,
                    padding: k / 2,
                    ..Default::default()
                },
            )
        };
        Fcn {
            c1: conv("c1", 1, 8, 3, 1),
            c2: conv("c2", 8, 16, 3, 2),
            c3: conv("c3", 16, 32, 3, 1),
            c4: conv("c4", 32, 32, 3, 2),
            head: conv("head", 72, CLASSES, 1, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        use tch::nn::Module;
        let f1 = self.c1.forward(x).relu();
        let f3 = self.c3.forward(&self.c2.forward(&f1).relu()).relu();
        let f4 = self.c4.forward(&f3).relu();
        let up = f3.upsample_bilinear2d([SIDE, SIDE], false, None, None);
        let global = f4
            .mean_dim([2i64, 3].as_slice(), true, Kind::Float)
            .expand([-1, -1, SIDE, SIDE], false);
        self.head.forward(&Tensor::cat(&[f1, up, global], 1))
    }
}

fn run(ctx: &Ctx) -> Result<Outcome> {
    let b = Budget::pick(ctx.mode, BUDGETS);
    let data = load(ctx, "mnist", b.train, b.test)?;
    let (x_train, m_train) = images_and_masks(&data.train_images, &data.train_labels);
    let (x_test, m_test) = images_and_masks(&data.test_images, &data.test_labels);
    let n = x_train.size()[0];
    let epochs = b.first_epochs + b.metric_epochs;
    let arms = [
        ("cross-entropy", Recipe::CrossEntropy),
        (
            "CE then Lovasz-Softmax",
            Recipe::Sequential {
                switch_epoch: b.first_epochs as u64,
            },
        ),
    ];
    let lovasz = LovaszSoftmax::default();
    let mut miou: [Vec<f64>; 2] = Default::default();
    let mut curves: [Vec<Vec<(f64, f64)>>; 2] = Default::default();
    for s in 0..seeds(ctx.mode) {
        let seed = ctx.seed + s as u64;
        for (a, (arm, recipe)) in arms.iter().enumerate() {
            tch::manual_seed(seed as i64);
            let mut vs = nn::VarStore::new(ctx.device);
            let net = Fcn::new(&vs.root());
            let step = |idx: &Tensor, info: &train_kit::StepInfo| {
                let z = net.forward(&x_train.index_select(0, idx));
                let y = m_train.index_select(0, idx);
                Ok(recipe.combine(
                    info.epoch,
                    || {
                        Ok(z.cross_entropy_loss::<Tensor>(
                            &y,
                            None,
                            tch::Reduction::Mean,
                            -100,
                            0.0,
                        ))
                    },
                    || lsm::lovasz_softmax(&z.softmax(1, Kind::Float), &y, &lovasz),
                )?)
            };
            let eval = |_| -> Result<train_kit::EvalMetrics> {
                let pred = tch::no_grad(|| -> Result<Tensor> {
                    let parts: Vec<Tensor> = (0..x_test.size()[0])
                        .step_by(500)
                        .map(|i| {
                            let len = 500.min(x_test.size()[0] - i);
                            net.forward(&x_test.narrow(0, i, len)).argmax(1, false)
                        })
                        .collect();
                    Ok(Tensor::cat(&parts, 0))
                })?;
                Ok(vec![(
                    "test_miou".into(),
                    lsm::mean_iou(&pred, &m_test, CLASSES, &Classes::Present, None)?,
                )])
            };
            let label = format!("smooth.iou {arm} seed {seed}");
            let report = fit(
                ctx,
                &mut vs,
                n,
                BATCH,
                epochs,
                2e-3,
                seed,
                &format!("runs/{a}_{s}"),
                &label,
                step,
                eval,
            )?;
            let curve = series(&report, "test_miou");
            miou[a].push(curve.last().map(|p| p.1).unwrap_or(f64::NAN));
            curves[a].push(curve);
        }
    }
    let gain = paired(&miou[1], &miou[0]);
    let plot = "miou.png";
    let s: Vec<train_kit::Series> = arms
        .iter()
        .enumerate()
        .map(|(a, (name, _))| train_kit::Series::new(*name, mean_series(&curves[a], 100.0)))
        .collect();
    train_kit::line_plot(
        &ctx.out_dir.join(plot),
        "smooth.iou: MNIST digit masks (11 classes), FCN, mean over seeds",
        "epoch",
        "test mIoU (%)",
        &s,
    )?;
    Ok(Outcome {
        value: gain.mean,
        value_text: format!(
            "test mIoU {:.2}% (CE) vs {:.2}% (CE then Lovasz-Softmax): {} over {} seeds",
            100.0 * mean(&miou[0]),
            100.0 * mean(&miou[1]),
            gain.points(),
            seeds(ctx.mode)
        ),
        measured: Measured::new().number(GAIN, gain.mean),
        skipped: None,
        plots: vec![plot.into()],
        details: json!({
            "test_miou_per_seed": {"cross_entropy": miou[0], "ce_then_lovasz": miou[1]},
            "gain": gain.json(),
            "recipe": {"model": "FCN at 14 px: conv 3x3 8, 16 s2, 32, 32 s2; concat of the 14 px features, the 7 px ones upsampled and the global mean of the 4 px ones; 1x1 -> 11",
                       "target": "MNIST avg-pooled 2x2 to 14 x 14; pixel > 0.35 -> digit + 1, else background 0", "optimizer": "AdamW lr 2e-3, no decay, warmup + cosine",
                       "batch": BATCH, "ce_epochs": b.first_epochs, "metric_epochs": b.metric_epochs,
                       "lovasz": lovasz, "train": b.train, "test": b.test, "miou": "classes present, over all test pixels"},
        }),
    })
}
