"""Reference outputs for det-anchorfree's CenterNet parity tests: direct transcriptions of
the official xingyizhou/CenterNet functions, on fixed inputs.

Usage: python centernet_reference.py OUT_DIR  (writes OUT_DIR/centernet.json)

Transcribed from the official code:
  src/lib/utils/image.py       gaussian_radius, gaussian2D, draw_umich_gaussian
  src/lib/datasets/sample/ctdet.py  the per-object target block of __getitem__ (the output
                                    affine is a division by the stride: det-core has already
                                    letterboxed the image)
  src/lib/models/losses.py     _neg_loss, RegL1Loss (with utils._sigmoid, _transpose_and_gather_feat)
  src/lib/models/decode.py     _nms, _topk, ctdet_decode
The corrected radius (CornerNet issue 37) solves the same quadratics with their proper roots.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


# ---- src/lib/utils/image.py ------------------------------------------------------------
def gaussian_radius(det_size, min_overlap=0.7):
    height, width = det_size
    a1 = 1
    b1 = (height + width)
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = np.sqrt(b1 ** 2 - 4 * a1 * c1)
    r1 = (b1 + sq1) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = np.sqrt(b2 ** 2 - 4 * a2 * c2)
    r2 = (b2 + sq2) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = np.sqrt(b3 ** 2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / 2
    return min(r1, r2, r3)


def gaussian_radius_corrected(det_size, min_overlap=0.7):
    height, width = det_size
    a1 = 1
    b1 = (height + width)
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = np.sqrt(b1 ** 2 - 4 * a1 * c1)
    r1 = (b1 - sq1) / (2 * a1)
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = np.sqrt(b2 ** 2 - 4 * a2 * c2)
    r2 = (b2 - sq2) / (2 * a2)
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = np.sqrt(b3 ** 2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / (2 * a3)
    return min(r1, r2, r3)


def gaussian2D(shape, sigma=1):
    m, n = [(ss - 1.) / 2. for ss in shape]
    y, x = np.ogrid[-m:m + 1, -n:n + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def draw_umich_gaussian(heatmap, center, radius, k=1):
    diameter = 2 * radius + 1
    gaussian = gaussian2D((diameter, diameter), sigma=diameter / 6)
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top:y + bottom, x - left:x + right]
    masked_gaussian = gaussian[radius - top:radius + bottom, radius - left:radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian * k, out=masked_heatmap)
    return heatmap


# ---- src/lib/datasets/sample/ctdet.py (per-object block) --------------------------------
def ctdet_targets(boxes, classes, num_classes, output_h, output_w, stride, max_objs, corrected):
    hm = np.zeros((num_classes, output_h, output_w), dtype=np.float32)
    wh = np.zeros((max_objs, 2), dtype=np.float32)
    reg = np.zeros((max_objs, 2), dtype=np.float32)
    ind = np.zeros((max_objs), dtype=np.int64)
    reg_mask = np.zeros((max_objs), dtype=np.uint8)
    radius_fn = gaussian_radius_corrected if corrected else gaussian_radius
    num_objs = min(len(boxes), max_objs)
    for k in range(num_objs):
        bbox = np.array(boxes[k], dtype=np.float32)
        cls_id = int(classes[k])
        # affine_transform(bbox[:2], trans_output) with trans_output = diag(1 / stride)
        bbox[:2] = np.array(boxes[k][:2], dtype=np.float64) / stride
        bbox[2:] = np.array(boxes[k][2:], dtype=np.float64) / stride
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, output_w - 1)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, output_h - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:
            radius = radius_fn((math.ceil(h), math.ceil(w)))
            radius = max(0, int(radius))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], dtype=np.float32)
            ct_int = ct.astype(np.int32)
            draw_umich_gaussian(hm[cls_id], ct_int, radius)
            wh[k] = 1. * w, 1. * h
            ind[k] = ct_int[1] * output_w + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1
    return hm, wh, reg, ind, reg_mask


# ---- src/lib/models/utils.py, losses.py ----------------------------------------------
def _sigmoid(x):
    return torch.clamp(x.sigmoid_(), min=1e-4, max=1 - 1e-4)


def _gather_feat(feat, ind):
    dim = feat.size(2)
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim)
    return feat.gather(1, ind)


def _transpose_and_gather_feat(feat, ind):
    feat = feat.permute(0, 2, 3, 1).contiguous()
    feat = feat.view(feat.size(0), -1, feat.size(3))
    return _gather_feat(feat, ind)


def _neg_loss(pred, gt):
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    loss = 0
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds
    num_pos = pos_inds.float().sum()
    pos_loss = pos_loss.sum()
    neg_loss = neg_loss.sum()
    if num_pos == 0:
        loss = loss - neg_loss
    else:
        loss = loss - (pos_loss + neg_loss) / num_pos
    return loss


def reg_l1_loss(output, mask, ind, target):
    pred = _transpose_and_gather_feat(output, ind)
    mask = mask.unsqueeze(2).expand_as(pred).float()
    loss = F.l1_loss(pred * mask, target * mask, reduction="sum")
    return loss / (mask.sum() + 1e-4)


# ---- src/lib/models/decode.py -----------------------------------------------------------
def _nms(heat, kernel=3):
    pad = (kernel - 1) // 2
    hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    keep = (hmax == heat).float()
    return heat * keep


def _topk(scores, K=40):
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = torch.topk(scores.view(batch, cat, -1), K)
    topk_inds = topk_inds % (height * width)
    topk_ys = (topk_inds // width).int().float()
    topk_xs = (topk_inds % width).int().float()
    topk_score, topk_ind = torch.topk(topk_scores.view(batch, -1), K)
    topk_clses = (topk_ind // K).int()
    topk_inds = _gather_feat(topk_inds.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_ys = _gather_feat(topk_ys.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_xs = _gather_feat(topk_xs.view(batch, -1, 1), topk_ind).view(batch, K)
    return topk_score, topk_inds, topk_clses, topk_ys, topk_xs


def ctdet_decode(heat, wh, reg, K):
    batch = heat.size(0)
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=K)
    reg = _transpose_and_gather_feat(reg, inds).view(batch, K, 2)
    xs = xs.view(batch, K, 1) + reg[:, :, 0:1]
    ys = ys.view(batch, K, 1) + reg[:, :, 1:2]
    wh = _transpose_and_gather_feat(wh, inds).view(batch, K, 2)
    bboxes = torch.cat([xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2,
                        xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], dim=2)
    return bboxes, scores, clses


def flat(a):
    return np.asarray(a, dtype=np.float64).reshape(-1).tolist()


def main(out_dir):
    rng = np.random.default_rng(14)
    out = {}
    # Radii, both rules, float and the call site's integer.
    sizes = [[10, 10], [32, 32], [3.2, 7.9], [1, 1], [0.5, 40], [17.3, 5.1], [120, 64]]
    out["radius"] = [
        {"h": h, "w": w,
         "corrected": float(gaussian_radius_corrected((h, w))),
         "original": float(gaussian_radius((h, w))),
         "int_corrected": max(0, int(gaussian_radius_corrected((math.ceil(h), math.ceil(w))))),
         "int_original": max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))}
        for h, w in sizes]
    # Gaussians drawn in sequence into one map (overlaps, borders).
    draws = [[3, 4, 2], [0, 0, 3], [15, 11, 4], [5, 5, 1], [14, 0, 0], [8, 6, 5]]
    hm = np.zeros((12, 16), dtype=np.float32)
    for x, y, r in draws:
        draw_umich_gaussian(hm, (x, y), r)
    out["draw"] = {"w": 16, "h": 12, "draws": draws, "heatmap": flat(hm)}
    # Target generation for a padded batch (stride 4, 64 x 96 input: 16 x 24 output).
    num_classes, stride, max_objs, ih, iw = 3, 4, 8, 64, 96
    images = []
    for i in range(3):
        n = [5, 0, 10][i]
        x1 = rng.uniform(-10, 90, n)
        y1 = rng.uniform(-10, 60, n)
        bw = rng.uniform(0, 40, n)
        bh = rng.uniform(0, 30, n)
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        if n:
            boxes[0, 2] = boxes[0, 0]  # a zero-width box
        cls = rng.integers(0, num_classes, n)
        images.append((boxes, cls))
    m_pad = 10
    out_h, out_w = ih // stride, iw // stride
    tgt = {"num_classes": num_classes, "stride": stride, "max_objects": max_objs,
           "input_h": ih, "input_w": iw, "m": m_pad, "boxes": [], "classes": []}
    for corrected in [True, False]:
        key = "corrected" if corrected else "original"
        res = {"hm": [], "wh": [], "reg": [], "ind": [], "mask": []}
        for boxes, cls in images:
            hmi, whi, regi, indi, maski = ctdet_targets(
                boxes.astype(np.float64).tolist(), cls, num_classes, out_h, out_w, stride,
                max_objs, corrected)
            res["hm"] += flat(hmi)
            res["wh"] += flat(whi)
            res["reg"] += flat(regi)
            res["ind"] += [int(v) for v in indi]
            res["mask"] += flat(maski)
        tgt[key] = res
    for boxes, cls in images:
        pb = np.zeros((m_pad, 4), dtype=np.float32)
        pc = -np.ones(m_pad, dtype=np.int64)
        pb[:len(boxes)] = boxes
        pc[:len(cls)] = cls
        tgt["boxes"] += flat(pb)
        tgt["classes"] += [int(v) for v in pc]
    out["targets"] = tgt
    # Losses on the corrected targets with fixed logits.
    b = len(images)
    gt = torch.tensor(tgt["corrected"]["hm"], dtype=torch.float32).view(b, num_classes, out_h, out_w)
    logits = torch.tensor(rng.normal(-2.0, 1.5, gt.numel()), dtype=torch.float32).view_as(gt)
    wh_out = torch.tensor(rng.normal(5.0, 3.0, b * 2 * out_h * out_w), dtype=torch.float32).view(b, 2, out_h, out_w)
    reg_out = torch.tensor(rng.uniform(0, 1, b * 2 * out_h * out_w), dtype=torch.float32).view(b, 2, out_h, out_w)
    mask = torch.tensor(tgt["corrected"]["mask"], dtype=torch.float32).view(b, max_objs)
    ind = torch.tensor(tgt["corrected"]["ind"], dtype=torch.int64).view(b, max_objs)
    wh_t = torch.tensor(tgt["corrected"]["wh"], dtype=torch.float32).view(b, max_objs, 2)
    reg_t = torch.tensor(tgt["corrected"]["reg"], dtype=torch.float32).view(b, max_objs, 2)
    hm_loss = _neg_loss(_sigmoid(logits.clone()), gt)
    empty = _neg_loss(_sigmoid(logits[1:2].clone()), gt[1:2])
    wh_loss = reg_l1_loss(wh_out, mask, ind, wh_t)
    off_loss = reg_l1_loss(reg_out, mask, ind, reg_t)
    out["loss"] = {"logits": flat(logits), "wh_out": flat(wh_out), "reg_out": flat(reg_out),
                   "hm": float(hm_loss), "hm_empty_image": float(empty),
                   "wh": float(wh_loss), "off": float(off_loss),
                   "total": float(hm_loss + 0.1 * wh_loss + 1.0 * off_loss)}
    # Decode on the probabilities of the same logits, K = 20 (no ties among the kept peaks).
    K = 20
    heat = _sigmoid(logits.clone())
    bboxes, scores, clses = ctdet_decode(heat, wh_out, reg_out, K)
    out["decode"] = {"k": K, "boxes": flat(bboxes * stride), "scores": flat(scores),
                     "classes": [int(v) for v in clses.reshape(-1)]}
    with open(os.path.join(out_dir, "centernet.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
