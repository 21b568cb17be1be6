//! contrastive-nce claims: the variational MI bounds on the correlated-Gaussian benchmark
//! ([`mi_bounds`]), CPC on the smartwatch IMU recordings ([`cpc_imu`]), SimCLR on MNIST
//! against the temperature ([`simclr_mnist`]) and MoCo's queue against SimCLR's batch
//! ([`moco_queue`]), both through [`ssl`], each probed by [`linear_probe`].

mod cpc_imu;
mod full;
mod mi_bounds;
mod moco_queue;
mod simclr_mnist;
mod ssl;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};

use contrastive_nce::NceError;
use train_kit::{AdamW, AdamWConfig, DataSource};

use crate::claim::Claim;

/// The contrastive-nce claims, in report order.
pub fn claims() -> Vec<Claim> {
    vec![
        mi_bounds::claim(),
        cpc_imu::claim(),
        simclr_mnist::claim(),
        moco_queue::claim(),
        full::claim(),
    ]
}

/// Unlabelled examples `x [n, ...]` as a [`DataSource`]: whole batches, shuffled per epoch
/// from `seed + epoch` (so a resumed epoch sees the same order).
pub(crate) struct Shuffled {
    pub(crate) x: Tensor,
    pub(crate) batch: i64,
    pub(crate) seed: u64,
}

impl DataSource for Shuffled {
    type Batch = Tensor;
    type Error = NceError;

    fn batches_per_epoch(&self) -> u64 {
        (self.x.size()[0] / self.batch) as u64
    }

    fn epoch_from(
        &self,
        epoch: u64,
        skip: u64,
    ) -> impl Iterator<Item = Result<Tensor, NceError>> + '_ {
        let n = self.x.size()[0];
        let mut order: Vec<i64> = (0..n).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed + epoch,
        ));
        let batch = self.batch as usize;
        (skip as usize..self.batches_per_epoch() as usize).map(move |b| {
            let idx =
                Tensor::from_slice(&order[b * batch..(b + 1) * batch]).to_device(self.x.device());
            Ok(self.x.index_select(0, &idx))
        })
    }
}

/// Test accuracy of a softmax regression trained (Adam, full batch, 200 steps) on
/// standardised frozen features, on the CPU: the linear probe of CPC and SimCLR.
pub(crate) fn linear_probe(
    train: (&Tensor, &Tensor),
    test: (&Tensor, &Tensor),
    classes: i64,
    seed: i64,
) -> anyhow::Result<f64> {
    let _g = tch::no_grad_guard();
    let mean = train.0.mean_dim([0i64].as_slice(), true, Kind::Float);
    let std = train
        .0
        .std_dim([0i64].as_slice(), true, true)
        .clamp_min(1e-6);
    let (ftr, fte) = ((train.0 - &mean) / &std, (test.0 - &mean) / &std);
    drop(_g);
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let lin = nn::linear(vs.root(), ftr.size()[1], classes, Default::default());
    let mut opt = AdamW::with_single_group(
        &vs,
        AdamWConfig {
            lr: 1e-2,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    for _ in 0..200 {
        let loss = ftr.apply(&lin).cross_entropy_for_logits(train.1);
        train_kit::Optimizer::zero_grad(&mut opt);
        loss.backward();
        train_kit::Optimizer::step(&mut opt)?;
    }
    let pred = tch::no_grad(|| fte.apply(&lin).argmax(1, false));
    Ok(pred
        .eq_tensor(test.1)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]))
}

/// CPC's pre-training as both CPC claims run it (`nce.cpc-imu`, the watch stream's CPC
/// features): unlabelled windows `x` in shuffled batches of 32, AdamW 1e-3 without decay at a
/// constant lr, the CPC loss, through `train_kit::Trainer`.
pub(crate) fn pretrain_cpc(
    vs: &mut nn::VarStore,
    model: &contrastive_nce::cpc::Cpc,
    x: Tensor,
    (seed, epochs, log_every): (u64, usize, usize),
    recipe: serde_json::Value,
    runo: &train_kit::RunOptions,
) -> anyhow::Result<train_kit::TrainReport> {
    let source = Shuffled { x, batch: 32, seed };
    let tcfg = train_kit::TrainerConfig {
        epochs,
        schedule: train_kit::Schedule::Constant { lr: 1e-3 },
        seeding: train_kit::Seeding::PerStep(seed),
        eval_every: 0,
        log_every,
        recipe,
        ..Default::default()
    };
    let mut opt = AdamW::with_single_group(
        vs,
        AdamWConfig {
            lr: 1e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    Ok(train_kit::Trainer::new(&tcfg, runo)?.fit(
        vs,
        &mut opt,
        &source,
        |batch: Tensor, _info| -> Result<Tensor, NceError> { Ok(model.loss(&batch, true)?.loss) },
        train_kit::trainer::no_eval,
    )?)
}
