#!/usr/bin/env bash
# Everything the issues ask of a lent GPU, in one call of about 9 minutes, one table printed last:
#   1. CUDA correctness (bin/gpu_check): ViT and MAE on the device against the CPU with the same
#      weights and inputs, bf16 autocast really in bf16 and close to f32, the attention kernel
#      libtorch picks (flash expected), a few bf16 training steps with finite, falling losses;
#   2. ViT-B/16 bf16 inference (batch 256) and training step (batch 128), MAE-B pre-training step
#      (batch 256, ratio 0.75): Rust against PyTorch eager in alternating rounds, torch.compile once
#      each, all on the same card; the OadTR training step (THUMOS'14 TSN configuration, batch 128,
#      bf16 autocast) against the PyTorch twin of the official model, alternating the same way;
#   2b. data parallel's gradient step at world size 1 (vit_bench --ddp: the ViT-B training step with
#      its gradients averaged in 25 MB buckets over a one-rank NCCL group) against the plain step,
#      and the dist crate's NCCL test at world size 1 (bf16 and f32 all-reduce, broadcast, barrier);
#   3. where the Rust MAE step's time goes: forward / backward / optimiser, and the host's time to
#      issue a step against the synchronised step (near 1: launch-bound, the device waits between
#      kernels); with `nsys` on the machine, the kernel time of a few steps as well.
#
# From a bundle (`cargo xtask bundle --out DIR`):  DIR/scripts/gpu_check.sh [--device cuda] [--rounds N]
# From the source tree, with the binaries in $CVLAB_BIN_DIR (default target/release):
#   benches/gpu/gpu_check.sh --device cpu        (tiny sizes, no torch.compile: `cargo xtask test` runs it)
# Writes gpu_check.jsonl next to the bundle's run.sh (or $CVLAB_OUT_DIR); exits non-zero when a
# check fails or a run errors.
set -euo pipefail
device=cuda
rounds=2
compile=1
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --no-compile) compile=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (expected --device cuda|cpu, --rounds N, --no-compile)" >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cpu) ;; *) echo "gpu_check.sh: --device must be cuda or cpu, got $device" >&2; exit 2 ;; esac

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$top/run.sh" ]; then
    # A bundle: bin/ through run.sh (it finds libtorch in python's torch), twins in scripts/.
    run() { "$top/run.sh" "$@"; }
    have() { [ -x "$top/bin/$1" ]; }
    scripts="$top/scripts"
    out_dir="${CVLAB_OUT_DIR:-$top}"
    py="${CVLAB_PYTHON:-${PYTHON:-python3}}"
else
    # The source tree: benches/gpu/.. is benches/; binaries are linked with an rpath.
    bin_dir="${CVLAB_BIN_DIR:-$top/../target/release}"
    run() { local b="$1"; shift; "$bin_dir/$b" "$@"; }
    have() { [ -x "$bin_dir/$1" ]; }
    scripts="$top/python"
    out_dir="${CVLAB_OUT_DIR:-$top/../target/gpu-check}"
    py="${CVLAB_PYTHON:-${PYTHON:-python3}}"
fi
mkdir -p "$out_dir"
out="$out_dir/gpu_check.jsonl"
: >"$out"

if [ "$device" = cuda ]; then
    vit_infer=(--model vit_base_patch16_224 --batch 256 --mode infer --device cuda --dtype bf16 --iters 30 --warmup 10)
    vit_train=(--model vit_base_patch16_224 --batch 128 --mode train --device cuda --dtype bf16 --iters 30 --warmup 10)
    mae=(--model mae_vit_base_patch16 --batch 256 --device cuda --dtype bf16 --iters 30 --warmup 10 --mask-ratio 0.75)
    oad_train=(--model thumos_tsn --batch 128 --mode train --device cuda --dtype bf16 --iters 30 --warmup 10)
    checks=(--device cuda)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
    vit_infer=(--model vit_tiny_patch16_224 --batch 2 --mode infer --device cpu --iters 2 --warmup 1 --threads 2)
    vit_train=(--model vit_tiny_patch16_224 --batch 2 --mode train --device cpu --iters 2 --warmup 1 --threads 2)
    mae=(--model mae_vit_mini_patch4_32 --batch 4 --device cpu --iters 2 --warmup 1 --threads 2 --mask-ratio 0.75)
    # One thread: at this size two threads on a loaded 2-core machine spin for seconds per step.
    oad_train=(--model small --batch 4 --mode train --device cpu --dtype f32 --iters 2 --warmup 1 --threads 1)
    checks=(--device cpu --vit vit_tiny_patch16_224 --mae mae_vit_mini_patch4_32 --batch 2 --steps 3)
    rounds=1
    compile=0
fi

tag() { "$py" -c 'import json,sys
t=json.loads(sys.argv[1])
for l in sys.stdin:
    if l.strip():
        r=json.loads(l); r.update(t); print(json.dumps(r))' "$1"; }

echo "== correctness" >&2
run gpu_check "${checks[@]}" | tag '{"section":"check"}' >>"$out"
# The NCCL path of the dist crate (a bundle's test executable built with its nccl feature).
if [ "$device" = cuda ] && [ -x "$top/run.sh" ]; then
    for t in "$top"/bin/gloo-*; do
        [ -x "$t" ] || continue
        if log=$(run "$(basename "$t")" --exact nccl_world_of_one_on_a_gpu --nocapture 2>&1); then pass=true; else pass=false; fi
        note=$(printf '%s' "$log" | grep -E "NCCL|skipped|test result" | tail -2 | tr '\n"' '  ' | cut -c1-160)
        echo "{\"section\":\"check\",\"check\":\"dist NCCL world of one\",\"value\":$([ $pass = true ] && echo 1 || echo 0),\"bound\":\"passes\",\"pass\":$pass,\"note\":\"$note\"}" >>"$out"
    done
fi

# The OadTR step needs oad_bench and its twin (a bundle made before they were shipped lacks them).
# vit_train_ddp: the Rust step with data parallel's gradient all-reduce at world size 1 (no twin).
vit_train_ddp=("${vit_train[@]}" --ddp)
timed=(vit_infer vit_train vit_train_ddp mae)
if have oad_bench && [ -f "$scripts/oad_bench.py" ]; then
    timed+=(oad_train)
else
    echo "oad_train skipped: no oad_bench binary or oad_bench.py twin next to this script" >&2
    echo '{"section":"skipped","what":"oad_train","why":"no oad_bench binary or oad_bench.py twin"}' >>"$out"
fi

echo "== timings, $rounds round(s)" >&2
for r in $(seq "$rounds"); do
    for what in "${timed[@]}"; do
        declare -n a="$what"
        case "$what" in
            mae) bin=mae_bench; twin=mae_bench.py ;;
            oad_train) bin=oad_bench; twin=oad_bench.py ;;
            *) bin=vit_bench; twin=vit_bench.py ;;
        esac
        run "$bin" "${a[@]}" | tag "{\"section\":\"$what\"}" >>"$out"
        [ "$what" = vit_train_ddp ] && continue
        "$py" "$scripts/$twin" "${a[@]}" | tag "{\"section\":\"$what\"}" >>"$out"
        # oad_bench.py has no --compile: the twin is eager only.
        if [ "$compile" = 1 ] && [ "$r" = 1 ] && [ "$what" != oad_train ]; then
            "$py" "$scripts/$twin" "${a[@]}" --compile | tag "{\"section\":\"$what\",\"impl\":\"pytorch-compile\"}" >>"$out"
        fi
    done
done

echo "== where the Rust MAE step's time goes" >&2
run mae_bench "${mae[@]}" --phases --host-time | tag '{"section":"mae_profile"}' >>"$out"
"$py" "$scripts/mae_bench.py" "${mae[@]}" --phases | tag '{"section":"mae_profile"}' >>"$out"
if [ "$device" = cuda ] && command -v nsys >/dev/null 2>&1; then
    prof=(--model mae_vit_base_patch16 --batch 256 --device cuda --dtype bf16 --iters 5 --warmup 3)
    if [ -x "$top/run.sh" ]; then target=("$top/run.sh" mae_bench); else target=("$bin_dir/mae_bench"); fi
    nsys profile --stats=true --force-overwrite true -o "$out_dir/mae_step" "${target[@]}" "${prof[@]}" \
        >"$out_dir/mae_nsys.txt" 2>&1 || echo "nsys failed: see $out_dir/mae_nsys.txt" >&2
fi

"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
failed = [r for r in rows if r.get("section") == "check" and not r["pass"]]
print("| check | value | bound | result | note |")
print("|---|---|---|---|---|")
for r in rows:
    if r.get("section") == "check":
        print(f"| {r['check']} | {r['value']:.3g} | {r['bound']} | {'pass' if r['pass'] else 'FAIL'} | {r['note']} |")
print()
print("| step | impl | img/s (oad_train: windows/s), median of rounds | vs PyTorch eager |")
print("|---|---|---|---|")
timed = ("vit_infer", "vit_train", "mae", "oad_train")
by = {}
for r in rows:
    if r.get("section") in timed + ("vit_train_ddp",):
        rate = r["images_per_s"] if "images_per_s" in r else r["batch"] / r["median_s"]
        by.setdefault((r["section"], r["impl"]), []).append(rate)
for sec in timed:
    eager = statistics.median(by.get((sec, "pytorch"), [float("nan")]))
    for impl in ("rust", "pytorch", "pytorch-compile"):
        if (sec, impl) in by:
            v = statistics.median(by[(sec, impl)])
            print(f"| {sec} | {impl} | {v:,.1f} | {v / eager:.3f} |")
ddp, plain = by.get(("vit_train_ddp", "rust")), by.get(("vit_train", "rust"))
if ddp and plain:
    d, p = statistics.median(ddp), statistics.median(plain)
    print(f"| vit_train_ddp | rust, gradients averaged over a world of one | {d:,.1f} | {d / p:.3f} of the plain Rust step |")
for r in rows:
    if r.get("section") == "skipped":
        print(f"| {r['what']} | skipped | {r['why']} | |")
print()
for r in rows:
    if r.get("section") == "mae_profile":
        extra = ""
        if "host_issue_s" in r:
            extra = f", host issue {r['host_issue_s']:.4f} s of a {r['median_s']:.4f} s step (share {r['host_share']:.2f})"
        print(f"MAE step phases ({r['impl']}): {r.get('phases_s')}{extra}")
if failed:
    print("FAILED checks:", ", ".join(r["check"] for r in failed))
    sys.exit(1)
PY
