#!/bin/bash
# jepa issue-18 item 5 on one GPU: the `long` schedule to its end, and two attempts at the
# above-pixels target (linear probe > 82.4 % on Fashion-MNIST):
#   long_pool, long_flat : `configs/jepa.py:long` (8,000 steps), pooled and flat; resumed from
#                          RESUME_DIR/long_pool and RESUME_DIR/long_flat when those exist (the CPU
#                          runs of session 9), else from scratch;
#   xlong_pool           : the same recipe for 3x as long (24,000 steps), probes every 3,000;
#   long_vit_tiny        : the `long` recipe (8,000 steps) with ViT-Tiny widths at 28 px
#                          (encoder 192/12/3, predictor 192/6/3).
# The last two probe both the mean-pooled last-block features and the last-4-block features
# (eval.probe_features=last4). Every run is killed at DEADLINE_S (SIGTERM: it saves a checkpoint
# at the next step boundary and rerunning the same command resumes it).
#
# usage: bash jepa/gpu_long.sh OUTDIR [DEADLINE_S] [DATA_DIR] [EXTRA_OVERRIDES...]
#   DATA_DIR: Fashion-MNIST IDX directory ("" = the Debian package's).
#   EXTRA_OVERRIDES: appended to every run (a CPU smoke test passes tiny step counts here).
#   Environment: RESUME_DIR (see above), ONLY=name,name,... runs only those.
# Afterwards: python -m jepa.compare --history eval/linear_probe_accuracy --workdirs OUTDIR/* --plot F
source "$(dirname "${BASH_SOURCE[0]}")/gpu_common.sh"
run long_pool --config configs/jepa.py:long
run long_flat --config configs/jepa.py:long --config.hierarchy.weights="(1.0,)"
run xlong_pool --config configs/jepa.py:long --config.train.num_steps=24000 \
  --config.train.eval_every=3000 --config.train.save_every=3000 --config.eval.probe_features=last4
run long_vit_tiny --config configs/jepa.py:long --config.model.width=192 --config.model.depth=12 \
  --config.model.num_heads=3 --config.model.predictor_width=192 --config.model.predictor_depth=6 \
  --config.model.predictor_heads=3 --config.eval.probe_features=last4
wait
report
