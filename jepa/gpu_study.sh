#!/bin/bash
# jepa issue-18 item 5 on one GPU, every run a concurrent process:
#   * flat / pool / layers hierarchies x seeds 0, 1, 2 at 3x the `quick` budget (2,400 steps of
#     batch 128, evaluations every 800 steps);
#   * the `long` config (8,000 steps, linear probe every 1,000 steps) for the flat and pool variants.
# Afterwards: python -m jepa.compare --workdirs OUT/cmp_* --out OUT/compare.json
#
# usage: bash jepa/gpu_study.sh OUTDIR [DEADLINE_S] [DATA_DIR] [EXTRA_OVERRIDES...]
#   DEADLINE_S: each run is killed after this many seconds (its checkpoints and history stay).
#   DATA_DIR: Fashion-MNIST IDX directory ("" = the Debian package's).
#   EXTRA_OVERRIDES: appended to every run (a CPU smoke test passes tiny step counts here).
#   ONLY=name,name,... (environment) runs only those runs.
source "$(dirname "${BASH_SOURCE[0]}")/gpu_common.sh"
steps=(--config.train.num_steps=2400 --config.train.eval_every=800 --config.train.save_every=800)
for s in 0 1 2; do
  run cmp_flat_s$s --config configs/jepa.py:quick --config.seed=$s "${steps[@]}" --config.hierarchy.weights="(1.0,)"
  run cmp_pool_s$s --config configs/jepa.py:quick --config.seed=$s "${steps[@]}"
  run cmp_layers_s$s --config configs/jepa.py:quick --config.seed=$s "${steps[@]}" \
    --config.hierarchy.kind=layers --config.hierarchy.layers="(0,3,2)"
done
run long_flat --config configs/jepa.py:long --config.hierarchy.weights="(1.0,)"
run long_pool --config configs/jepa.py:long
wait
report
