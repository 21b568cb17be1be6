#!/usr/bin/env bash
# ViT-B/16 on a CUDA GPU, bf16 autocast: inference batch 256 and training step batch 128, Rust
# (bin/vit_bench) against PyTorch eager and torch.compile (scripts/vit_bench.py), alternating in
# one run on the same card. Run from a bundle (`cargo xtask bundle --out DIR`):
#   DIR/scripts/vit_gpu.sh [ROUNDS]        -> DIR/vit_gpu.jsonl and a table on stdout
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}"
py="${PYTHON:-python3}"
out="$here/vit_gpu.jsonl"
: >"$out"
infer=(--model vit_base_patch16_224 --batch 256 --mode infer --device cuda --dtype bf16 --iters 30 --warmup 10)
train=(--model vit_base_patch16_224 --batch 128 --mode train --device cuda --dtype bf16 --iters 30 --warmup 10)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$here/vit_gpu.card"
for r in $(seq "$rounds"); do
    for args in infer train; do
        declare -n a="$args"
        "$here/run.sh" vit_bench "${a[@]}" >>"$out"
        "$py" "$here/scripts/vit_bench.py" "${a[@]}" >>"$out"
        if [ "$args" = train ]; then
            "$py" "$here/scripts/vit_bench.py" "${a[@]}" --compile >>"$out"
        fi
    done
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["mode"], r["impl"]), []).append(r["images_per_s"])
print("| mode | impl | img/s (median of rounds) | vs PyTorch eager |")
print("|---|---|---|---|")
for mode in ("infer", "train"):
    eager = statistics.median(by.get((mode, "pytorch"), [float("nan")]))
    for impl in ("rust", "pytorch", "pytorch-compile"):
        if (mode, impl) in by:
            v = statistics.median(by[(mode, impl)])
            print(f"| {mode} | {impl} | {v:,.0f} | {v / eager:.3f} |")
PY
