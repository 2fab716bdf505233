#!/usr/bin/env bash
# Puts in .whl/ (ignored by git) the Python 3.12 wheels that benchmarks/gpu_run.sh needs on the
# lent GPU machine, which has torch and torchvision but no registry: Keras (the PConv U-Net on
# torch) and mmdet with mmcv 2.1.0 built without its ops ("mmcv-lite", pure Python; our Mask
# R-CNN runs there on torchvision's kernels, benchmarks/torchvision_mmcv_ops.py). Run here, from
# anywhere, with a package index reachable: `bash benchmarks/gpu_wheels.sh` (about 10 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
mkdir -p .whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
# Pinned to what the machine's Python 3.12 was seen to run with; numpy, SciPy, OpenCV, Pillow,
# matplotlib, PyYAML, rich, six and tqdm are already there.
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl \
  keras==3.15.1 namex==0.1.0 optree==0.20.0 \
  mmengine==0.10.7 mmdet==3.3.0 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0 \
  terminaltables==3.1.10 pycocotools==2.0.11 shapely==2.2.0
source_dir=$(mktemp -d)
trap 'rm -rf "$source_dir"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$source_dir" mmcv==2.1.0
MMCV_WITH_OPS=0 "$python" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$source_dir"/mmcv-2.1.0.tar.gz
ls -1 .whl
