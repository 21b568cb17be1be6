//! What the mae test binaries share: a tiny model, a loader over tensors, and the bitwise
//! comparison of two VarStores (the lock on torch's generator is `test_support::rng_lock`).

#![allow(dead_code)] // each test binary uses its own part

use datasets::{Loader, LoaderConfig};
use mae::MaeConfig;
use tch::{nn, Tensor};

/// `img x img` images with `chans` channels in 4x4 patches, encoder 2 blocks x 32 (2 heads),
/// decoder 1 block x 16 (2 heads).
pub fn tiny(img: i64, chans: i64) -> MaeConfig {
    let mut c = MaeConfig::mae_vit_mini_patch4_32();
    c.encoder.img_size = (img, img);
    c.encoder.in_chans = chans;
    c.encoder.embed_dim = 32;
    c.encoder.depth = 2;
    c.encoder.num_heads = 2;
    c.decoder_embed_dim = 16;
    c.decoder_depth = 1;
    c.decoder_num_heads = 2;
    c
}

/// A loader over `x`, `y` in batches of `batch` (last partial batch dropped), order seeded by
/// `seed`, no prefetch thread.
pub fn loader(x: &Tensor, y: &Tensor, batch: usize, seed: u64) -> Loader {
    let cfg = LoaderConfig {
        batch_size: batch,
        drop_last: true,
        seed,
        prefetch: 0,
        ..Default::default()
    };
    Loader::new(x, y, cfg).unwrap()
}

/// Every variable of `a` equals the same-named one of `b`, bit for bit.
pub fn assert_same_weights(a: &nn::VarStore, b: &nn::VarStore) {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len(), "different variable sets");
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{name} differs");
    }
}
