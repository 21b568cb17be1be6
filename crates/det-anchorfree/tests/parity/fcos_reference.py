"""Reference outputs for the FCOS parity tests (det-anchorfree, tests/fcos.rs).

Usage: python fcos_reference.py OUT_DIR

Direct transcriptions of the official tianzhi0549/FCOS code
(fcos_core/modeling/rpn/fcos/loss.py: get_sample_region, compute_targets_for_locations,
compute_centerness_targets; fcos_core/layers/iou_loss.py: IOULoss), changed only where the
docs say: box areas are (x2 - x1) * (y2 - y1) without the maskrcnn-benchmark +1, labels are
0-based with -1 for background (the official code shifts by one, 0 = background). Plus
torchvision.ops.sigmoid_focal_loss. Writes OUT_DIR/fcos.safetensors and OUT_DIR/cases.json.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torchvision.ops import sigmoid_focal_loss

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
INF = 100000000


def compute_locations_per_level(h, w, stride):
    shifts_x = torch.arange(0, w * stride, step=stride, dtype=torch.float32)
    shifts_y = torch.arange(0, h * stride, step=stride, dtype=torch.float32)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x = shift_x.reshape(-1)
    shift_y = shift_y.reshape(-1)
    return torch.stack((shift_x, shift_y), dim=1) + stride // 2


def get_sample_region(gt, strides, num_points_per, gt_xs, gt_ys, radius=1.0):
    num_gts = gt.shape[0]
    K = len(gt_xs)
    gt = gt[None].expand(K, num_gts, 4)
    center_x = (gt[..., 0] + gt[..., 2]) / 2
    center_y = (gt[..., 1] + gt[..., 3]) / 2
    center_gt = gt.new_zeros(gt.shape)
    if center_x[..., 0].sum() == 0:
        return gt_xs.new_zeros(gt_xs.shape, dtype=torch.uint8)
    beg = 0
    for level, n_p in enumerate(num_points_per):
        end = beg + n_p
        stride = strides[level] * radius
        xmin = center_x[beg:end] - stride
        ymin = center_y[beg:end] - stride
        xmax = center_x[beg:end] + stride
        ymax = center_y[beg:end] + stride
        center_gt[beg:end, :, 0] = torch.where(xmin > gt[beg:end, :, 0], xmin, gt[beg:end, :, 0])
        center_gt[beg:end, :, 1] = torch.where(ymin > gt[beg:end, :, 1], ymin, gt[beg:end, :, 1])
        center_gt[beg:end, :, 2] = torch.where(xmax > gt[beg:end, :, 2], gt[beg:end, :, 2], xmax)
        center_gt[beg:end, :, 3] = torch.where(ymax > gt[beg:end, :, 3], gt[beg:end, :, 3], ymax)
        beg = end
    left = gt_xs[:, None] - center_gt[..., 0]
    right = center_gt[..., 2] - gt_xs[:, None]
    top = gt_ys[:, None] - center_gt[..., 1]
    bottom = center_gt[..., 3] - gt_ys[:, None]
    center_bbox = torch.stack((left, top, right, bottom), -1)
    return center_bbox.min(-1)[0] > 0


def compute_targets_for_locations(locations, bboxes, labels_per_im, object_sizes_of_interest,
                                  strides, num_points_per_level, radius):
    xs, ys = locations[:, 0], locations[:, 1]
    area = (bboxes[:, 2] - bboxes[:, 0]) * (bboxes[:, 3] - bboxes[:, 1])
    l = xs[:, None] - bboxes[:, 0][None]
    t = ys[:, None] - bboxes[:, 1][None]
    r = bboxes[:, 2][None] - xs[:, None]
    b = bboxes[:, 3][None] - ys[:, None]
    reg_targets_per_im = torch.stack([l, t, r, b], dim=2)
    if radius > 0:
        is_in_boxes = get_sample_region(bboxes, strides, num_points_per_level, xs, ys, radius=radius)
    else:
        is_in_boxes = reg_targets_per_im.min(dim=2)[0] > 0
    max_reg_targets_per_im = reg_targets_per_im.max(dim=2)[0]
    is_cared_in_the_level = (max_reg_targets_per_im >= object_sizes_of_interest[:, [0]]) & (
        max_reg_targets_per_im <= object_sizes_of_interest[:, [1]])
    locations_to_gt_area = area[None].repeat(len(locations), 1)
    locations_to_gt_area[is_in_boxes == 0] = INF
    locations_to_gt_area[is_cared_in_the_level == 0] = INF
    locations_to_min_area, locations_to_gt_inds = locations_to_gt_area.min(dim=1)
    reg_targets_per_im = reg_targets_per_im[range(len(locations)), locations_to_gt_inds]
    labels_per_im = labels_per_im[locations_to_gt_inds].clone()
    labels_per_im[locations_to_min_area == INF] = -1
    return labels_per_im, reg_targets_per_im


def compute_centerness_targets(reg_targets):
    left_right = reg_targets[:, [0, 2]]
    top_bottom = reg_targets[:, [1, 3]]
    centerness = (left_right.min(dim=-1)[0] / left_right.max(dim=-1)[0]) * \
                 (top_bottom.min(dim=-1)[0] / top_bottom.max(dim=-1)[0])
    return torch.sqrt(centerness)


def iou_loss(pred, target, weight, loss_type):
    pred_left, pred_top, pred_right, pred_bottom = pred.unbind(1)
    target_left, target_top, target_right, target_bottom = target.unbind(1)
    target_area = (target_left + target_right) * (target_top + target_bottom)
    pred_area = (pred_left + pred_right) * (pred_top + pred_bottom)
    w_intersect = torch.min(pred_left, target_left) + torch.min(pred_right, target_right)
    h_intersect = torch.min(pred_bottom, target_bottom) + torch.min(pred_top, target_top)
    g_w_intersect = torch.max(pred_left, target_left) + torch.max(pred_right, target_right)
    g_h_intersect = torch.max(pred_bottom, target_bottom) + torch.max(pred_top, target_top)
    ac_uion = g_w_intersect * g_h_intersect + 1e-7
    area_intersect = w_intersect * h_intersect
    area_union = target_area + pred_area - area_intersect
    ious = (area_intersect + 1.0) / (area_union + 1.0)
    gious = ious - (ac_uion - area_union) / ac_uion
    if loss_type == "iou":
        losses = -torch.log(ious)
    elif loss_type == "linear_iou":
        losses = 1 - ious
    else:
        losses = 1 - gious
    if weight is not None and weight.sum() > 0:
        return (losses * weight).sum()
    return losses.sum()


def main(out):
    g = torch.Generator().manual_seed(14)
    # A 96 x 128 input, strides 8 .. 128 (P3-P7), the paper's regression bounds and the same
    # halved (at a quarter a bound is twice the stride and centre sampling at 1.5 strides
    # changes nothing).
    h, w = 96, 128
    strides = [8, 16, 32, 64, 128]
    bound_sets = {"paper": [64.0, 128.0, 256.0, 512.0], "half": [32.0, 64.0, 128.0, 256.0]}
    locs, npl = [], []
    for s in strides:
        loc = compute_locations_per_level((h + s - 1) // s, (w + s - 1) // s, s)
        locs.append(loc)
        npl.append(len(loc))
    locations = torch.cat(locs)
    # Random boxes of 4 .. 90 px, two of equal area overlapping (tie break), one nested.
    n = 14
    wh = 4 + 86 * torch.rand(n, 2, generator=g)
    x1 = torch.rand(n, generator=g) * (w - wh[:, 0])
    y1 = torch.rand(n, generator=g) * (h - wh[:, 1])
    boxes = torch.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], 1)
    boxes[1] = boxes[0] + torch.tensor([3.0, 2.0, 3.0, 2.0])
    boxes[2] = torch.tensor([10.0, 10.0, 70.0, 60.0])
    boxes[3] = torch.tensor([20.0, 20.0, 40.0, 40.0])
    boxes = boxes.float()
    labels = torch.randint(0, 6, (n,), generator=g)
    tensors = {"locations": locations, "boxes": boxes, "labels": labels}
    for name, bounds in bound_sets.items():
        sizes = []
        for i, loc in enumerate(locs):
            lo = -1.0 if i == 0 else bounds[i - 1]
            hi = INF if i == len(strides) - 1 else bounds[i]
            sizes.append(torch.tensor([[lo, hi]]).expand(len(loc), 2))
        sizes = torch.cat(sizes).float()
        tensors[f"sizes_{name}"] = sizes
        for radius in [0.0, 1.5]:
            lab, reg = compute_targets_for_locations(locations, boxes, labels, sizes, strides,
                                                     npl, radius)
            tag = f"{name}_r{int(radius * 10)}"
            tensors[f"labels_{tag}"] = lab
            tensors[f"reg_{tag}"] = reg.contiguous()
            pos = lab >= 0
            tensors[f"ctr_{tag}"] = compute_centerness_targets(reg[pos]).contiguous()
    # IoU losses on positive (l, t, r, b) pairs.
    target = 1 + 40 * torch.rand(50, 4, generator=g)
    pred = 1 + 40 * torch.rand(50, 4, generator=g)
    weight = compute_centerness_targets(target)
    tensors["iou_pred"], tensors["iou_target"] = pred, target
    for t in ["iou", "linear_iou", "giou"]:
        tensors[f"iou_{t}"] = iou_loss(pred, target, weight, t).reshape(1)
    # torchvision's focal loss on logits and one-hot targets.
    logits = 3 * torch.randn(200, 6, generator=g)
    onehot = (torch.rand(200, 6, generator=g) > 0.85).float()
    tensors["focal_logits"], tensors["focal_targets"] = logits, onehot
    tensors["focal_none"] = sigmoid_focal_loss(logits, onehot, 0.25, 2.0, "none")
    tensors["focal_sum"] = sigmoid_focal_loss(logits, onehot, 0.25, 2.0, "sum").reshape(1)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "fcos.safetensors"))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"strides": strides, "bound_sets": list(bound_sets), "points_per_level": npl,
                   "image": [h, w]}, f)


if __name__ == "__main__":
    main(sys.argv[1])
