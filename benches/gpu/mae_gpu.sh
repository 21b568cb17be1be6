#!/usr/bin/env bash
# MAE-B/16 pre-training step on a CUDA GPU, bf16 autocast, batch 256, mask ratio 0.75: Rust
# (bin/mae_bench) against PyTorch eager and torch.compile (scripts/mae_bench.py), alternating in
# one run on the same card; then the encoder-with-mask-tokens design (Table 1c) in Rust. Run from
# a bundle that holds bin/mae_bench and scripts/mae_bench.py:
#   DIR/scripts/mae_gpu.sh [ROUNDS]        -> DIR/mae_gpu.jsonl and a table on stdout
# Then the forward / backward / optimiser split of a step on both sides (`--phases`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}"
py="${PYTHON:-python3}"
out="$here/mae_gpu.jsonl"
: >"$out"
args=(--model mae_vit_base_patch16 --batch 256 --device cuda --dtype bf16 --iters 30 --warmup 10 --mask-ratio 0.75)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$here/mae_gpu.card"
for r in $(seq "$rounds"); do
    "$here/run.sh" mae_bench "${args[@]}" >>"$out"
    "$py" "$here/scripts/mae_bench.py" "${args[@]}" >>"$out"
    "$py" "$here/scripts/mae_bench.py" "${args[@]}" --compile >>"$out"
done
"$here/run.sh" mae_bench "${args[@]}" --mask-tokens | sed 's/"impl": *"rust"/"impl":"rust-mask-tokens"/' >>"$out"
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["impl"], []).append(r["images_per_s"])
eager = statistics.median(by.get("pytorch", [float("nan")]))
print("| MAE-B/16 step, batch 256, bf16 | img/s (median of rounds) | vs PyTorch eager |")
print("|---|---|---|")
for impl in ("rust", "pytorch", "pytorch-compile", "rust-mask-tokens"):
    if impl in by:
        v = statistics.median(by[impl])
        print(f"| {impl} | {v:,.0f} | {v / eager:.3f} |")
PY
# Where the time goes: forward / backward / optimiser medians, each phase synchronised.
"$here/run.sh" mae_bench "${args[@]}" --phases | "$py" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("rust phases (s):", r["phases_s"])'
"$py" "$here/scripts/mae_bench.py" "${args[@]}" --phases | "$py" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("pytorch phases (s):", r["phases_s"])'
