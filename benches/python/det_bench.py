"""The Python half of the side-by-side detection timings (`cargo xtask bench` runs it beside the
Rust `det_bench` binary with the same arguments and prints the ratio).

--mode coco: a COCO evaluator end to end on the files `det_bench --mode coco` wrote to
--data-dir: COCO(gt) + loadRes(results) + evaluate + accumulate + summarize (stdout silenced).
--evaluator picks it: pycocotools (the reference), hotcoco (Rust, pycocotools-compatible; its
rayon pool gets RAYON_NUM_THREADS = --threads) or faster-coco-eval (C++, `COCOeval_faster`). --mode nms: torchvision.ops.nms on the CPU on the same float32 boxes (det-core's
splitmix64 draws, reproduced here). Prints one JSON line: per-iteration wall times, the median,
and the 12 stats or the number kept.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time

MASK = (1 << 64) - 1


def splitmix64(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def nms_boxes(n, seed):
    """det_core::synth::nms_boxes: the same doubles, then float32."""
    import numpy as np
    g = splitmix64(seed)
    u = lambda: (next(g) >> 11) * (1.0 / (1 << 53))
    boxes, scores = [], []
    for _ in range(n):
        x, y = u() * 1000.0, u() * 1000.0
        w, h = 8.0 + u() * 120.0, 8.0 + u() * 120.0
        boxes.append([x, y, x + w, y + h])
        scores.append(u())
    return np.array(boxes, dtype=np.float32), np.array(scores, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="nms", choices=["coco", "nms"])
    ap.add_argument("--data-dir", default="target/det-bench-data")
    ap.add_argument("--boxes", type=int, default=10000)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--evaluator", default="pycocotools",
                    choices=["pycocotools", "hotcoco", "faster-coco-eval"])
    a = ap.parse_args()
    times, extra = [], {}
    if a.mode == "coco":
        if a.evaluator == "hotcoco":
            if a.threads > 0:
                os.environ["RAYON_NUM_THREADS"] = str(a.threads)
            from hotcoco import COCO, COCOeval
        elif a.evaluator == "faster-coco-eval":
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        gt_path = os.path.join(a.data_dir, "gt.json")
        dt_path = os.path.join(a.data_dir, "results.json")
        if not (os.path.exists(gt_path) and os.path.exists(dt_path)):
            sys.exit(f"{gt_path} / {dt_path} missing: run det_bench --mode coco first (it writes them)")
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                gt = COCO(gt_path)
                dt = gt.loadRes(dt_path)
                ev = COCOeval(gt, dt, "bbox")
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            t = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(t)
            extra = {"stats": [float(s) for s in ev.stats]}
    else:
        import torch
        from torchvision.ops import nms
        if a.threads > 0:
            torch.set_num_threads(a.threads)
        b, s = nms_boxes(a.boxes, 7)
        boxes, scores = torch.from_numpy(b), torch.from_numpy(s)
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            keep = nms(boxes, scores, a.iou)
            t = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(t)
            extra = {"kept": int(keep.numel())}
    med = sorted(times)[len(times) // 2]
    impl = "python" if a.mode != "coco" or a.evaluator == "pycocotools" else a.evaluator
    print(json.dumps({"impl": impl, "mode": a.mode, "boxes": a.boxes, "threads": a.threads,
                      "times_s": times, "median_s": med, **extra}))


if __name__ == "__main__":
    main()
