#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one call on the lent GPU machine (about 6 minutes on
# an H200), after `bash benchmarks/gpu_wheels.sh` here:
#   run(command="bash benchmarks/gpu_run.sh", carry=[".whl"], timeout_s=600)
# Logs go to $OUT (they come back). Mask R-CNN is ours through mmdet, on torchvision's RoIAlign
# and NMS (mmcv-lite); the PConv U-Net runs on Keras's torch backend.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 KERAS_BACKEND=torch
out=${OUT:-/tmp/bg-obj-remover-gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/machine.log"
# Most wanted first, so a run cut short still answers it: our Mask R-CNN, then what bounds the
# inpainter without the blend (the per-call cost of Keras on torch), then the pipeline's default.
python3 benchmarks/batching.py --device cuda --models r50 --mmcv_ops torchvision 2>&1 | tee "$out/r50.log"
python3 benchmarks/batching.py --device cuda --models inpaint inpaint-host --inpaint_blend none 2>&1 \
  | tee "$out/inpaint-none.log"
python3 benchmarks/pconv_forward.py --sizes 512 --batch 8 --widths 1 0.01 2>&1 | tee "$out/pconv-forward.log"
python3 benchmarks/batching.py --device cuda --models inpaint inpaint-host --inpaint_blend poisson 2>&1 \
  | tee "$out/inpaint-poisson.log"
