"""pycocotools on MNIST-det (run by tests/parity_mnist_det.rs through $CVLAB_PYTHON): the
ground truth written by det-core (`instances_test.json`) evaluated against detections written by
det-core, with COCOeval (bbox), and the ground-truth counts per area range as COCOeval's
inclusive bounds select them.

usage: mnist_det_reference.py OUT_DIR GT_JSON NAME=DT_JSON...
Writes OUT_DIR/expected.json: {"counts": {...}, "<NAME>": [12 stats], ...}.
"""
import contextlib
import io
import json
import os
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    out, gt_path = sys.argv[1], sys.argv[2]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
    result = {}
    params = COCOeval(gt, iouType="bbox").params
    areas = [a["area"] for a in gt.dataset["annotations"]]
    result["counts"] = {
        label: sum(1 for a in areas if lo <= a <= hi)
        for label, (lo, hi) in zip(params.areaRngLbl, params.areaRng)
    }
    for arg in sys.argv[3:]:
        name, dt_path = arg.split("=", 1)
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(dt_path)
            ev = COCOeval(gt, dt, iouType="bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        result[name] = [float(s) for s in ev.stats]
        print(name, " ".join(f"{s:.4f}" for s in ev.stats))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
