"""Reference outputs for det-core's parity tests (run by tests/parity_pycocotools.rs through
$CVLAB_PYTHON): generated COCO ground truth and detections evaluated by pycocotools COCOeval,
and random float32 boxes through torchvision.ops.nms / batched_nms / box_iou.

usage: coco_reference.py OUT_DIR
Writes OUT_DIR/case{0,1,2}/{gt.json,dt.json,expected.json}, OUT_DIR/nms.json, and OUT_DIR/voc.json
(generated VOC boxes with difficult flags and the AP of the VOC devkit's voc_eval logic, 11-point
and all-point, reproduced below since the devkit is not a package).
"""
import contextlib
import io
import json
import os
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def make_case(seed, n_images, n_cats, max_dets_img, integer_coords):
    rng = np.random.default_rng(seed)
    images = [{"id": int(i), "width": 640, "height": 480} for i in rng.permutation(np.arange(1, n_images + 1) * 3)]
    cats = [{"id": int(c), "name": f"c{c}"} for c in range(1, n_cats + 1)]
    anns, dets = [], []
    ann_id = 1
    for im in images:
        kind = rng.random()
        n_gt = 0 if kind < 0.1 else int(rng.integers(1, 15))
        gts = []
        for _ in range(n_gt):
            # sizes spanning small (< 32^2), medium and large (> 96^2) areas
            w = float(np.exp(rng.uniform(np.log(2), np.log(300))))
            h = float(w * np.exp(rng.normal(0, 0.4)))
            x, y = float(rng.uniform(0, 600)), float(rng.uniform(0, 450))
            if integer_coords:
                x, y, w, h = float(round(x)), float(round(y)), float(max(1, round(w))), float(max(1, round(h)))
            cat = int(rng.integers(1, n_cats + 1))
            crowd = int(rng.random() < 0.06)
            # the segment area differs from the box area, as in real COCO
            area = float(w * h * rng.uniform(0.5, 1.0)) if rng.random() < 0.7 else float(w * h)
            if rng.random() < 0.02:
                area = 1024.0  # exactly on the small/medium boundary
            anns.append({"id": ann_id, "image_id": im["id"], "category_id": cat, "bbox": [x, y, w, h],
                         "area": area, "iscrowd": crowd})
            gts.append((x, y, w, h, cat))
            ann_id += 1
        no_dets = rng.random() < 0.1
        if no_dets:
            continue
        n_dt = int(rng.integers(0, max_dets_img + 1))
        for d in range(n_dt):
            if gts and rng.random() < 0.6:
                x, y, w, h, cat = gts[int(rng.integers(len(gts)))]
                j = rng.normal(0, 0.15, 4)
                x, y = x + j[0] * w, y + j[1] * h
                w, h = w * float(np.exp(j[2])), h * float(np.exp(j[3]))
                if rng.random() < 0.15:
                    cat = int(rng.integers(1, n_cats + 1))
            else:
                w = float(np.exp(rng.uniform(np.log(2), np.log(300))))
                h = float(w * np.exp(rng.normal(0, 0.4)))
                x, y = float(rng.uniform(0, 600)), float(rng.uniform(0, 450))
                cat = int(rng.integers(1, n_cats + 1))
            if integer_coords:
                x, y, w, h = float(round(x)), float(round(y)), float(max(0, round(w))), float(max(0, round(h)))
            # coarse scores make many ties, exercising the stable sorts
            score = float(round(rng.random(), 2))
            dets.append({"image_id": im["id"], "category_id": int(cat), "bbox": [float(x), float(y), float(w), float(h)],
                         "score": score})
    if n_cats > 2:
        # a category the ground truth does not list, and one listed category never annotated
        dets.append({"image_id": images[0]["id"], "category_id": 999, "bbox": [1.0, 1.0, 5.0, 5.0], "score": 0.5})
        cats.append({"id": n_cats + 1, "name": "never"})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def evaluate(out, gt, dets):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(out, "dt.json"), "w") as f:
        json.dump(dets, f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(os.path.join(out, "gt.json"))
        coco_dt = coco_gt.loadRes(os.path.join(out, "dt.json"))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({
            "stats": [float(s) for s in ev.stats],
            "precision_shape": list(ev.eval["precision"].shape),
            "precision": ev.eval["precision"].ravel().tolist(),
            "recall": ev.eval["recall"].ravel().tolist(),
            "scores": ev.eval["scores"].ravel().tolist(),
        }, f)


def nms_reference(path):
    import torch
    from torchvision.ops import batched_nms, box_iou, nms
    g = torch.Generator().manual_seed(0)
    cases = []
    for n, thr in [(1000, 0.5), (3000, 0.7), (500, 0.3)]:
        xy = torch.rand(n, 2, generator=g) * 500
        wh = torch.rand(n, 2, generator=g) * 80 + 1
        boxes = torch.cat([xy, xy + wh], 1).float()
        scores = (torch.rand(n, generator=g) * 100).round() / 100  # ties
        scores = scores.float()
        classes = torch.randint(0, 5, (n,), generator=g)
        cases.append({
            "boxes": boxes.tolist(), "scores": scores.tolist(), "classes": classes.tolist(), "iou_threshold": thr,
            "keep": nms(boxes, scores, thr).tolist(),
            "batched_keep": batched_nms(boxes, scores, classes, thr).tolist(),
            "iou_rows": 50, "iou": box_iou(boxes[:50], boxes).tolist(),
        })
    with open(path, "w") as f:
        json.dump(cases, f)


def voc_ap(rec, prec, use_07_metric=False):
    """The VOC devkit's voc_ap (py-faster-rcnn `voc_eval.py`), verbatim logic."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
    else:
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def voc_eval_class(gts, dets, cls, ovthresh=0.5, use_07_metric=False):
    """The devkit's voc_eval for one class on in-memory records (same arithmetic, +1 pixels)."""
    class_recs, npos = {}, 0
    for g in gts:
        if g["class"] != cls:
            continue
        r = class_recs.setdefault(g["image"], {"bbox": [], "difficult": [], "det": []})
        r["bbox"].append(g["bbox"]); r["difficult"].append(g["difficult"]); r["det"].append(False)
        npos += not g["difficult"]
    ds = [d for d in dets if d["class"] == cls]
    image_ids = [d["image"] for d in ds]
    confidence = np.array([d["score"] for d in ds])
    BB = np.array([d["bbox"] for d in ds]).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence)
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs.get(image_ids[d], {"bbox": [], "difficult": [], "det": []})
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = np.array(R["bbox"]).reshape(-1, 4).astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0]); iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2]); iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0); ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps); jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0; R["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return float(voc_ap(rec, prec, use_07_metric))


def voc_reference(path, seed=4):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for i in range(60):
        img = f"img{i:03d}"
        boxes = []
        for _ in range(int(rng.integers(0, 8))):
            x, y = float(rng.integers(0, 400)), float(rng.integers(0, 300))
            w, h = float(rng.integers(4, 120)), float(rng.integers(4, 120))
            cls = ["tree", "dead"][int(rng.random() < 0.3)]
            gts.append({"image": img, "class": cls, "bbox": [x, y, x + w, y + h], "difficult": bool(rng.random() < 0.15)})
            boxes.append((x, y, w, h, cls))
        for _ in range(int(rng.integers(0, 12))):
            if boxes and rng.random() < 0.6:
                x, y, w, h, cls = boxes[int(rng.integers(len(boxes)))]
                x, y = x + float(rng.integers(-8, 9)), y + float(rng.integers(-8, 9))
            else:
                x, y = float(rng.integers(0, 400)), float(rng.integers(0, 300))
                w, h = float(rng.integers(4, 120)), float(rng.integers(4, 120))
                cls = ["tree", "dead"][int(rng.random() < 0.3)]
            # distinct scores: the devkit's quicksort is unstable on ties
            dets.append({"image": img, "class": cls, "score": float(rng.random()), "bbox": [x, y, x + w, y + h]})
    expected = {c: {"eleven": voc_eval_class(gts, dets, c, use_07_metric=True),
                    "all": voc_eval_class(gts, dets, c, use_07_metric=False)} for c in ["dead", "tree"]}
    with open(path, "w") as f:
        json.dump({"gt": gts, "dets": dets, "expected": expected}, f)


def main():
    out = sys.argv[1]
    specs = [(1, 300, 6, 30, False), (2, 150, 3, 160, False), (3, 200, 2, 25, True)]
    for i, (seed, n_img, n_cat, max_d, integer) in enumerate(specs):
        gt, dets = make_case(seed, n_img, n_cat, max_d, integer)
        evaluate(os.path.join(out, f"case{i}"), gt, dets)
    nms_reference(os.path.join(out, "nms.json"))
    voc_reference(os.path.join(out, "voc.json"))


if __name__ == "__main__":
    main()
