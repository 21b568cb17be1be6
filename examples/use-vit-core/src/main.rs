//! vit-core used from a project of its own: timm's `vit_tiny_patch16_224` (ViT-Ti/16,
//! Dosovitskiy et al. 2020 at DeiT's tiny width), a forward pass on zeros, the logits' shape and
//! the parameter count (5,717,416 in timm), on CUDA when this build sees it. The README shows
//! this file (xtask's tests check that they agree).

use tch::{nn, Device, Kind, Tensor};
use vit_core::{param_count, ViTConfig, VisionTransformer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ViTConfig::by_name("vit_tiny_patch16_224")?;
    let device = Device::cuda_if_available();
    let vs = nn::VarStore::new(device);
    let model = VisionTransformer::new(&vs.root(), &cfg)?;
    let images = Tensor::zeros([2, 3, 224, 224], (Kind::Float, device));
    let logits = tch::no_grad(|| model.forward_t(&images, false))?;
    println!("logits {:?}", logits.size()); // [2, 1000]
    println!("parameters {}", VisionTransformer::num_params(&vs)); // 5717416, as timm
    assert_eq!(param_count(&cfg), 5_717_416);
    Ok(())
}
