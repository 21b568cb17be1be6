"""Reference values for the YOLO v1 loss, written from the sources with plain loops in float64.

- `paper`: Redmon et al. 2016, Sec. 2.2, Eq. 3 (lambda_coord 5, lambda_noobj 0.5, sqrt w / h
  predicted, responsible = highest IoU in the cell, class loss per object cell), one object
  per cell (the first in ground-truth order); ties on IoU take the first predictor, or, with
  `rmse`, the lowest box_rmse when every IoU is 0.
- `darknet`: `src/data.c` fill_truth_region (no shuffle: the boxes keep their order) and
  `src/detection_layer.c` forward_detection_layer with the CVPR-era yolo.cfg (rescore 1,
  sqrt 1, object 1, noobject .5, class 1, coord 5), transcribed line by line on the flat
  output `[S*S*C][S*S*B][S*S*B*4]`; the loss whose gradient is -delta is
  sum(delta^2 / (2 * scale)) over the written deltas.

Writes loss_ref.json into the folder given as the first argument.
"""
import json
import math
import sys

import numpy as np


def box_iou(a, b):
    # darknet box.c: overlap / box_intersection / box_union on (x, y, w, h).
    def overlap(x1, w1, x2, w2):
        left = max(x1 - w1 / 2, x2 - w2 / 2)
        right = min(x1 + w1 / 2, x2 + w2 / 2)
        return right - left

    w = overlap(a[0], a[2], b[0], b[2])
    h = overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if (w < 0 or h < 0) else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def box_rmse(a, b):
    return math.sqrt(sum((a[k] - b[k]) ** 2 for k in range(4)))


def cell_truth(boxes, classes, H, W, S, min_wh):
    """Per image: dict cell index -> (class, x offset, y offset, w, h); the first object wins."""
    truth = {}
    for b, c in zip(boxes, classes):
        if c < 0:
            continue
        x1, y1, x2, y2 = b
        x = (x1 + x2) / 2 / W
        y = (y1 + y2) / 2 / H
        w = (x2 - x1) / W
        h = (y2 - y1) / H
        if w < min_wh or h < min_wh or w <= 0 or h <= 0:
            continue
        col = int(x * S)
        row = int(y * S)
        i = col + row * S
        if i in truth:
            continue
        truth[i] = (c, x * S - col, y * S - row, w, h)
    return truth


def paper_loss(cells, boxes, classes, H, W, S, B, C, tie):
    N = cells.shape[0]
    total = 0.0
    for n in range(N):
        truth = cell_truth(boxes[n], classes[n], H, W, S, 0.0)
        for i in range(S * S):
            row, col = divmod(i, S)
            p = cells[n, row, col]
            t = truth.get(i)
            resp = -1
            if t is not None:
                tb = (t[1] / S, t[2] / S, t[3], t[4])
                outs = [(p[5 * j] / S, p[5 * j + 1] / S, p[5 * j + 2] ** 2, p[5 * j + 3] ** 2) for j in range(B)]
                ious = [box_iou(o, tb) for o in outs]
                if max(ious) > 0 or tie == "first":
                    resp = int(np.argmax(ious))  # first of the highest
                else:
                    rm = [box_rmse(o, tb) for o in outs]
                    resp = int(np.argmin(rm))
                j = resp
                total += 5.0 * ((p[5 * j] - t[1]) ** 2 + (p[5 * j + 1] - t[2]) ** 2)
                total += 5.0 * ((p[5 * j + 2] - math.sqrt(t[3])) ** 2 + (p[5 * j + 3] - math.sqrt(t[4])) ** 2)
                total += (p[5 * j + 4] - 1.0) ** 2
                for k in range(C):
                    total += (p[5 * B + k] - (1.0 if k == t[0] else 0.0)) ** 2
            for j in range(B):
                if j != resp:
                    total += 0.5 * p[5 * j + 4] ** 2
    return total / N


def darknet_forward(flat, boxes, classes, H, W, S, B, C):
    """forward_detection_layer on net.truth from fill_truth_region; returns (loss, delta)."""
    N = flat.shape[0]
    locations = S * S
    coords = 4
    inputs = locations * (C + B * 5)
    out = flat.reshape(-1)
    delta = np.zeros_like(out)
    scale = np.zeros_like(out)
    object_scale, noobject_scale, class_scale, coord_scale = 1.0, 0.5, 1.0, 5.0
    for b in range(N):
        truth = np.zeros(locations * (1 + coords + C))
        for i, t in cell_truth(boxes[b], classes[b], H, W, S, 0.005).items():
            index = i * (5 + C)
            truth[index] = 1
            if t[0] < C:
                truth[index + 1 + t[0]] = 1
            truth[index + 1 + C: index + 5 + C] = t[1:]
        index = b * inputs
        for i in range(locations):
            truth_index = i * (1 + coords + C)
            is_obj = truth[truth_index]
            for j in range(B):
                p_index = index + locations * C + i * B + j
                delta[p_index] = noobject_scale * (0 - out[p_index])
                scale[p_index] = noobject_scale
            best_index = -1
            best_iou = 0.0
            best_rmse = 20.0
            if not is_obj:
                continue
            class_index = index + i * C
            for j in range(C):
                delta[class_index + j] = class_scale * (truth[truth_index + 1 + j] - out[class_index + j])
                scale[class_index + j] = class_scale
            tb = truth[truth_index + 1 + C: truth_index + 5 + C].copy()
            tbox = (tb[0] / S, tb[1] / S, tb[2], tb[3])
            for j in range(B):
                box_index = index + locations * (C + B) + (i * B + j) * coords
                o = out[box_index: box_index + 4]
                ob = (o[0] / S, o[1] / S, o[2] * o[2], o[3] * o[3])
                iou = box_iou(ob, tbox)
                rmse = box_rmse(ob, tbox)
                if best_iou > 0 or iou > 0:
                    if iou > best_iou:
                        best_iou = iou
                        best_index = j
                else:
                    if rmse < best_rmse:
                        best_rmse = rmse
                        best_index = j
            box_index = index + locations * (C + B) + (i * B + best_index) * coords
            tbox_index = truth_index + 1 + C
            o = out[box_index: box_index + 4]
            ob = (o[0] / S, o[1] / S, o[2] * o[2], o[3] * o[3])
            iou = box_iou(ob, tbox)
            p_index = index + locations * C + i * B + best_index
            delta[p_index] = object_scale * (iou - out[p_index])  # rescore
            scale[p_index] = object_scale
            for k in range(4):
                t = truth[tbox_index + k]
                if k >= 2:
                    t = math.sqrt(t)
                delta[box_index + k] = coord_scale * (t - out[box_index + k])
                scale[box_index + k] = coord_scale
    written = scale > 0
    loss = float(np.sum(delta[written] ** 2 / (2 * scale[written])))
    return loss, delta.reshape(N, -1)


def to_darknet(cells, S, B, C):
    N = cells.shape[0]
    L = S * S
    flat = np.zeros((N, L * (C + 5 * B)))
    for n in range(N):
        for i in range(L):
            row, col = divmod(i, S)
            p = cells[n, row, col]
            for k in range(C):
                flat[n, i * C + k] = p[5 * B + k]
            for j in range(B):
                flat[n, L * C + i * B + j] = p[5 * j + 4]
                for k in range(4):
                    flat[n, L * (C + B) + (i * B + j) * 4 + k] = p[5 * j + k]
    return flat


def random_cells(rng, N, S, B, C):
    cells = np.zeros((N, S, S, 5 * B + C))
    for j in range(B):
        cells[..., 5 * j: 5 * j + 2] = rng.uniform(0, 1, (N, S, S, 2))
        cells[..., 5 * j + 2: 5 * j + 4] = rng.uniform(0.1, 0.8, (N, S, S, 2))
        cells[..., 5 * j + 4] = rng.uniform(-0.2, 1.0, (N, S, S))
    cells[..., 5 * B:] = rng.uniform(-0.1, 1.0, (N, S, S, C))
    return cells


def case(name, cells, boxes, classes, H, W, S, B, C):
    flat = to_darknet(cells, S, B, C)
    dl, delta = darknet_forward(flat, boxes, classes, H, W, S, B, C)
    return {
        "name": name, "S": S, "B": B, "C": C, "H": H, "W": W,
        "cells": cells.reshape(-1).tolist(),
        "flat": flat.reshape(-1).tolist(),
        "N": int(cells.shape[0]), "M": len(boxes[0]),
        "boxes": [[list(map(float, b)) for b in bs] for bs in boxes],
        "classes": [list(map(int, c)) for c in classes],
        "paper_first": paper_loss(cells, boxes, classes, H, W, S, B, C, "first"),
        "paper_rmse": paper_loss(cells, boxes, classes, H, W, S, B, C, "rmse"),
        "darknet_loss": dl,
        "darknet_delta": delta.reshape(-1).tolist(),
    }


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(15)
    cases = []
    # 60x60 image, S = 3 (20 px cells), B = 2, C = 3.
    S, B, C, H, W = 3, 2, 3, 60, 60
    # Two centres in one cell (cell (0, 0)): the first listed is kept.
    cells = random_cells(rng, 1, S, B, C)
    boxes = [[[2, 4, 18, 14], [5, 5, 15, 19], [30, 30, 50, 58]]]
    cases.append(case("two centres in one cell", cells, boxes, [[2, 0, 1]], H, W, S, B, C))
    # An empty image next to a full one, and padding (-1) in the full one.
    cells = random_cells(rng, 2, S, B, C)
    boxes = [[[0, 0, 0, 0], [0, 0, 0, 0]], [[10, 10, 30, 50], [0, 0, 0, 0]]]
    cases.append(case("empty image in the batch", cells, boxes, [[-1, -1], [1, -1]], H, W, S, B, C))
    # Centres exactly on cell borders: x = 20 (col 1, offset 0), y = 40 (row 2, offset 0).
    cells = random_cells(rng, 1, S, B, C)
    boxes = [[[10, 30, 30, 50], [35, 0, 45, 20]]]
    cases.append(case("centres on cell borders", cells, boxes, [[0, 2]], H, W, S, B, C))
    # Every IoU 0 in the object cell (1, 1): predictor 1 is the closer one (lowest RMSE),
    # so the first-index rule and darknet's RMSE rule disagree.
    cells = random_cells(rng, 1, S, B, C)
    p = cells[0, 1, 1]
    p[0:4] = [0.95, 0.95, 0.25, 0.25]     # the far side of the cell
    p[5:9] = [0.0, 0.0, 0.2, 0.2]         # closer, still disjoint
    boxes = [[[22, 22, 26, 26]]]          # centre (24, 24): offsets .2, .2 in cell (1, 1)
    cases.append(case("every IoU 0: first vs lowest RMSE", cells, boxes, [[1]], H, W, S, B, C))
    # Two identical predictors overlapping the object: the IoU tie goes to the first.
    cells = random_cells(rng, 1, S, B, C)
    p = cells[0, 0, 2]
    p[0:4] = [0.5, 0.5, 0.4, 0.4]
    p[5:9] = [0.5, 0.5, 0.4, 0.4]
    boxes = [[[44, 4, 56, 16]]]
    cases.append(case("equal positive IoUs", cells, boxes, [[2]], H, W, S, B, C))
    # The paper's shape on random boxes: 448 px, S = 7, B = 2, C = 20, two images.
    S, B, C, H, W = 7, 2, 20, 448, 448
    cells = random_cells(rng, 2, S, B, C)
    boxes, classes = [], []
    for n in range(2):
        bs, cs = [], []
        for _ in range(6):
            cx, cy = rng.uniform(10, 438, 2)
            w, h = rng.uniform(8, 200, 2)
            bs.append([max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(448.0, cx + w / 2), min(448.0, cy + h / 2)])
            cs.append(int(rng.integers(0, C)))
        boxes.append(bs)
        classes.append(cs)
    cases.append(case("random 7x7x30", cells, boxes, classes, H, W, S, B, C))
    with open(f"{out}/loss_ref.json", "w") as f:
        json.dump({"cases": cases}, f)


if __name__ == "__main__":
    main()
