//! What the mae test binaries share: a tiny model (the lock on torch's generator is
//! `test_support::rng_lock`).

#![allow(dead_code)] // each test binary uses its own part

use mae::MaeConfig;

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
