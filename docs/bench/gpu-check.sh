#!/usr/bin/env bash
# The one script to run on a GPU machine, from the repository root (cijepa_lite importable).
# Writes everything under $OUT (default ./gpu-check-out): JSON results, the printed tables, the GPU tests' report.
# About 12-15 minutes on one A100/H100. Exit status non-zero if any part failed; every part runs regardless.
#   OUT=/some/dir bash docs/bench/gpu-check.sh            # SKIP_COMPILE=1 skips the compiled bench (~3 min of inductor builds)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-check-out}
PY=${PY:-python}
RUN=${RUN:-/tmp/gpu-check-run}   # ViT-B checkpoints are ~1.5 GB each: kept out of $OUT
mkdir -p "$OUT"
status=0
part() {  # part NAME CMD...: run, tee the output to $OUT/NAME.txt, remember a failure
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "{\"part\": \"$name\", \"rc\": $rc}" >> "$OUT/parts.jsonl"
    [ "$rc" -eq 0 ] || status=1
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -c "import torch, json; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,
  'gpu': torch.cuda.get_device_name(0), 'capability': torch.cuda.get_device_capability(0)}))" > "$OUT/env.json"

# 1. The whole GPU path in <= 5 minutes (R-A05-B08 at ViT-B, batch 256): PASS/FAIL table.
part preflight $PY -m cijepa_lite preflight --json "$OUT/preflight.json"
# 2. I-JEPA vs cI-JEPA, eager, preset size, batch 256: wall/host/device time, peak memory per method, utilisation.
part bench $PY -m cijepa_lite bench --json "$OUT/bench.json"
# 3. The same compiled (inductor): graphs counted, none while timed.
if [ -z "${SKIP_COMPILE:-}" ]; then
    part bench-compile $PY -m cijepa_lite bench --json "$OUT/bench-compile.json" --no-memory compile=true
fi
# 4. A few hundred real optimizer steps of a ViT-B preset on synthetic data (the embedded digits at 224 px):
#    loss falls, no skipped steps, images/s and the chosen micro-batch in metrics.jsonl.
rm -rf "$RUN"
part pretrain $PY -m cijepa_lite pretrain --preset R-A05-B08 --out "$RUN" --steps 300 --no-progress \
    dataset=digits log_every=25 ckpt_minutes=1000
cp "$RUN/metrics.jsonl" "$OUT/pretrain-metrics.jsonl" 2>/dev/null
cp "$RUN/config.json" "$OUT/pretrain-config.json" 2>/dev/null
# 5. The GPU-marked tests (they skip without CUDA elsewhere).
part gpu-tests $PY -m pytest -q -m gpu tests -p no:cacheprovider --junitxml "$OUT/gpu-tests.xml"

echo "gpu-check done: status $status; results in $OUT"
exit $status
