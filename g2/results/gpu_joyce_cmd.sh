#!/usr/bin/env bash
# Issue 16, stage 3 on one GPU: learn φ = φ_t + dη on Joyce's resolution M_t for several t, one
# process per t in parallel, each to a held-out plateau or its caps (g2/resolution_learning.py).
#
#   bash g2/results/gpu_joyce_cmd.sh OUT_DIR [extra g2.resolution_learning flags]
#
# Writes OUT_DIR/resolution_learn_t<t>.json (rewritten after every evaluation, so a run cut off
# still leaves its curve) and OUT_DIR/log_t<t>.txt. Total wall time <= ~7 min including start-up
# and compilation: training stops at --max_seconds (from process start, compile included), the
# final test evaluation follows, and `timeout` interrupts anything still running at HARD_TIMEOUT.
# Extra flags are appended to every process (the last value of a flag wins), e.g. a tiny CPU test:
#   TS="0.16" bash g2/results/gpu_joyce_cmd.sh /tmp/jq --batch 8 --eval_points 64 --max_steps 4 \
#     --eval_every 2 --width 8 --depth 1 --local_width 8 --local_depth 1
# Environment: TS (t values, default "0.04 0.08 0.16 0.24"), MEM_FRACTION (per process, 0.1),
# HARD_TIMEOUT (s, 400), PYTHON (python).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUT_DIR [extra g2.resolution_learning flags]" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
cd "$(dirname "${BASH_SOURCE[0]}")/../.."   # the repository root
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TS=${TS:-"0.04 0.08 0.16 0.24"}
# H200 sizing: the train step holds ~2.9 MB per point (XLA memory analysis on CPU, nets 64 x 2),
# 46 MFLOP and 16 MB of memory traffic per point (XLA cost analysis on CPU): batch 1024 needs ~3 GB
# of the 0.1 x 139 GiB each process may take (margin for GPU layouts); 8192 held-out points.
pids=()
for t in $TS; do
  XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.1} PYTHONUNBUFFERED=1 \
    timeout -s INT "${HARD_TIMEOUT:-400}" "${PYTHON:-python}" -m g2.resolution_learning \
    --learn_t "$t" --batch 1024 --eval_points 8192 --eval_every 25 --min_steps 300 \
    --learning_rate 1e-3 --lr_drops 2 \
    --max_steps 100000 --max_seconds 330 --out_dir "$out" "$@" > "$out/log_t$t.txt" 2>&1 &
  pids+=("$!")
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
for t in $TS; do echo "== t = $t"; grep -E "^t = |plateau at" "$out/log_t$t.txt" | tail -n 4 || true; done
exit "$status"
