"""Reference outputs of timm's RandAugment ops for the mae RandAugment parity test.

Usage: python randaugment_reference.py OUT_DIR

Builds a few 8-bit RGB test images (smooth colour gradients, hard-edged blocks, mild noise; one
of them low-contrast so that autocontrast and equalize have work to do) and, for every op of
timm's `_RAND_INCREASING_TRANSFORMS` at a few fixed magnitudes and both signs, applies timm's
own `AugmentOp` (prob 1, no magnitude noise) with the hparams `create_transform` passes for the
official MAE fine-tuning (`img_mean` = ImageNet mean rounded to 8 bits, bicubic interpolation,
`translate_pct` 0.45). The sign is fixed by replacing timm's `_randomly_negate` for the call.

Writes OUT_DIR/images.npy (uint8 [N, 3, H, W]), OUT_DIR/case_<k>.npy (uint8 [N, 3, H, W]) and
OUT_DIR/cases.json (a list of {"name", "level", "negate", "file"}).
"""
import json
import os
import sys

import numpy as np
from PIL import Image

import timm.data.auto_augment as aa

MEAN = (0.485, 0.456, 0.406)


def test_images(h=37, w=53):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    imgs = []
    # 1: colour gradients and a few hard-edged blocks, mild noise.
    r = 128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    g = 40 + 180 * xx / (w - 1)
    b = 220 - 170 * yy / (h - 1)
    img = np.stack([r, g, b], -1)
    img[5:15, 8:20] = (250, 20, 60)
    img[20:30, 30:45] = (10, 200, 240)
    img += rng.normal(0, 6, img.shape)
    imgs.append(img)
    # 2: low contrast (levels ~ 70..170), for autocontrast and equalize.
    base = 120 + 45 * np.cos(xx / 7.0 + yy / 11.0)
    img = np.stack([base, base * 0.9 + 10, 170 - 0.5 * (base - 75)], -1)
    img += rng.normal(0, 3, img.shape)
    imgs.append(img)
    # 3: saturated colours with a dark corner and a bright stripe.
    img = np.stack([255 * (xx > w / 2), 255 * (yy > h / 2), 128 + 0 * xx], -1)
    img[:8, :8] = 0
    img[:, 25:28] = 255
    img = img + rng.normal(0, 10, img.shape)
    imgs.append(img)
    return np.clip(np.round(np.stack(imgs)), 0, 255).astype(np.uint8)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    images = test_images()
    np.save(os.path.join(out, "images.npy"), np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    hparams = dict(
        translate_const=int(224 * 0.45),
        img_mean=tuple(min(255, round(255 * m)) for m in MEAN),
        interpolation=Image.BICUBIC,
    )
    assert hparams["img_mean"] == (124, 116, 104)
    signed = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
              "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
              "SharpnessIncreasing"}
    cases = []
    for name in aa._RAND_INCREASING_TRANSFORMS:
        for level in (2.0, 5.0, 9.0, 10.0):
            for negate in ((False, True) if name in signed else (False,)):
                aa._randomly_negate = (lambda v: -v) if negate else (lambda v: v)
                op = aa.AugmentOp(name, prob=1.0, magnitude=level, hparams=hparams)
                try:
                    res = [np.asarray(op(Image.fromarray(img, "RGB"))) for img in images]
                except ValueError:
                    # PosterizeIncreasing at level 10 keeps 0 bits: Pillow >= 13 refuses that
                    # (bits must be 1-8), older Pillow applied the table v & ~255 = 0 (black).
                    # The Rust op keeps the older behaviour; compare with black.
                    assert name == "PosterizeIncreasing" and level == 10.0, name
                    res = list(np.zeros_like(images))
                res = np.stack(res).transpose(0, 3, 1, 2)
                f = f"case_{len(cases)}.npy"
                np.save(os.path.join(out, f), np.ascontiguousarray(res))
                cases.append(dict(name=name, level=level, negate=negate, file=f))
    with open(os.path.join(out, "cases.json"), "w") as fh:
        json.dump(cases, fh)


if __name__ == "__main__":
    main()
