//! Official checkpoints: the pre-trained encoders (`mae_pretrain_vit_{base,large,huge}.pth`,
//! encoder only) and the visualisation ones with the decoder (`mae_visualize_vit_large.pth`),
//! after `tools/convert_timm.py --pth FILE --out FILE.safetensors` (it unwraps `model` and
//! strips `module.`). Names are the official ones, so nothing is renamed here.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use tch::nn;
use vit_core::{LoadOptions, LoadReport, VisionTransformer};

use crate::error::{MaeError, Result};
use crate::model::MaskedAutoencoder;

/// Whether a checkpoint had the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecoderStatus {
    /// Every decoder tensor came from the file.
    Loaded,
    /// Encoder-only checkpoint: these decoder tensors keep their initial values (fine for
    /// fine-tuning or probing; reconstructions need a trained decoder).
    Missing(Vec<String>),
}

/// What [`MaskedAutoencoder::load_safetensors`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct MaeLoadReport {
    /// What vit-core's loader did, tensor by tensor.
    pub report: LoadReport,
    /// Whether the decoder was in the file.
    pub decoder: DecoderStatus,
}

impl std::fmt::Display for MaeLoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.report)?;
        match &self.decoder {
            DecoderStatus::Loaded => write!(f, "; decoder loaded"),
            DecoderStatus::Missing(names) => write!(
                f,
                "; no decoder in the checkpoint ({} tensors left as initialised)",
                names.len()
            ),
        }
    }
}

/// Decoder-side names: everything the encoder of a fine-tuned ViT does not have.
pub fn is_decoder_name(name: &str) -> bool {
    name.starts_with("decoder_") || name == "mask_token" || name == "encoder_mask_token"
}

/// The tensor names in a safetensors file, from its JSON header (no tensor is read).
pub fn safetensors_names(path: &Path) -> Result<BTreeSet<String>> {
    let bad = |message: String| MaeError::Checkpoint {
        path: path.into(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad(format!("not a safetensors file (no header length: {e})")))?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(format!(
            "not a safetensors file (header of {len} bytes in a {size}-byte file)"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors header: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("safetensors header is not a JSON object".into()))?;
    Ok(obj
        .keys()
        .filter(|k| k.as_str() != "__metadata__")
        .cloned()
        .collect())
}

impl MaskedAutoencoder {
    /// Loads an official (converted) checkpoint into `vs`, the store this model was built in
    /// at its root. Every encoder tensor must be there (an error names the missing ones and
    /// nothing is changed); a checkpoint without the decoder is reported, not an error.
    /// `pos_embed` of another square grid is resampled; other shape differences are errors.
    pub fn load_safetensors(
        &self,
        vs: &nn::VarStore,
        path: impl AsRef<Path>,
    ) -> Result<MaeLoadReport> {
        let path = path.as_ref();
        let names = safetensors_names(path)?;
        let vars = vs.variables();
        let mut missing_encoder: Vec<&String> = vars
            .keys()
            .filter(|k| !is_decoder_name(k) && !names.contains(*k))
            .collect();
        missing_encoder.sort();
        if !missing_encoder.is_empty() {
            let list: Vec<&str> = missing_encoder.iter().map(|s| s.as_str()).collect();
            return Err(MaeError::Checkpoint {
                path: path.into(),
                message: format!(
                    "encoder tensors missing: {} (is this an MAE/ViT checkpoint of the same size?)",
                    list.join(", ")
                ),
            });
        }
        let report = self
            .encoder()
            .load_safetensors(vs, path, &LoadOptions::default())?;
        // A checkpoint without `encoder_mask_token` is normal: only the Table 1c variant has it.
        let decoder_missing: Vec<String> = report
            .missing
            .iter()
            .filter(|n| is_decoder_name(n) && n.as_str() != "encoder_mask_token")
            .cloned()
            .collect();
        let decoder = if decoder_missing.is_empty() {
            DecoderStatus::Loaded
        } else {
            DecoderStatus::Missing(decoder_missing)
        };
        Ok(MaeLoadReport { report, decoder })
    }
}

/// Loads a pre-trained MAE encoder (an MAE checkpoint, full or encoder-only) into a ViT
/// classifier, as `main_finetune.py` / `main_linprobe.py` do: `head.*` is never loaded and,
/// with average pooling, `fc_norm.*` is new. Any other missing tensor is an error (the
/// official scripts assert the same set). Decoder tensors and, under average pooling, `norm.*`
/// are left unused (`unexpected` in the report).
pub fn load_encoder_into(
    vit: &VisionTransformer,
    vs: &nn::VarStore,
    path: impl AsRef<Path>,
) -> Result<LoadReport> {
    let path = path.as_ref();
    let names = safetensors_names(path)?;
    let allowed = |n: &str| n.starts_with("head.") || n.starts_with("fc_norm.");
    let missing: Vec<String> = vs
        .variables()
        .keys()
        .filter(|k| !names.contains(*k) && !allowed(k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(MaeError::Checkpoint {
            path: path.into(),
            message: format!(
                "encoder tensors missing: {} (expected only head.* and fc_norm.* to be new)",
                missing.join(", ")
            ),
        });
    }
    let opts = LoadOptions {
        strict: false,
        skip: vec!["head.".into()],
    };
    Ok(vit.load_safetensors(vs, path, &opts)?)
}
