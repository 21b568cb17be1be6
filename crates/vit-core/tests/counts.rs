//! Analytic parameter and MAC counts against timm's, for every preset. The fixture
//! `reference/timm_counts.json` is written by `tests/parity/timm_counts.py` (timm models on
//! the meta device, MACs from `torch.utils.flop_counter.FlopCounterMode`).

// Test helpers too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tch::{nn, Device};
use vit_core::{param_count, Macs, ViTConfig, VisionTransformer};

fn fixture() -> Value {
    serde_json::from_str(vit_core::TIMM_COUNTS_JSON).unwrap()
}

#[test]
fn params_and_macs_equal_timm_for_every_preset() {
    let doc = fixture();
    let models = doc["models"].as_object().unwrap();
    assert_eq!(models.len(), 15);
    for name in ViTConfig::preset_names() {
        let cfg = ViTConfig::by_name(&name).unwrap();
        let want = &models[&name];
        assert_eq!(
            param_count(&cfg),
            want["params"].as_i64().unwrap(),
            "{name} parameters"
        );
        let macs = Macs::of(&cfg, (224, 224)).total();
        let timm = want["macs"].as_i64().unwrap();
        assert_eq!(macs, timm, "{name}: MACs");
    }
}

#[test]
fn analytic_param_count_equals_the_built_model() {
    for mut cfg in [ViTConfig::tiny(16), ViTConfig::small(32)] {
        for (avg, regs, ls) in [(false, 0, None), (true, 4, Some(1e-5))] {
            if avg {
                cfg.global_pool = vit_core::GlobalPool::Avg;
            }
            cfg.reg_tokens = regs;
            cfg.init_values = ls;
            let vs = nn::VarStore::new(Device::Cpu);
            VisionTransformer::new(&vs.root(), &cfg).unwrap();
            assert_eq!(
                VisionTransformer::num_params(&vs),
                param_count(&cfg),
                "{cfg:?}"
            );
        }
    }
}
