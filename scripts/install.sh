#!/usr/bin/env bash
# Installs the whole stack into .venv/ (see constraints.txt for why each pin exists).
# Idempotent: a package already installed at its pinned version is not fetched or rebuilt again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PYTHON=${PYTHON:-python3.11}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --progress-bar off -c constraints.txt)

# torch: the CPU wheel. On this machine kind it lies in /opt/wheels; elsewhere PyTorch's CPU index
# serves it. Never let a plain `torch` requirement resolve on PyPI (a CUDA build of several GB).
if compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
  torch_source=(--find-links /opt/wheels)
else
  torch_source=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
"${pip[@]}" --upgrade pip "setuptools<81" wheel
"${pip[@]}" "${torch_source[@]}" torch==2.13.0
"${pip[@]}" -r requirements.txt

# mmcv 2.1.0 has no wheel for torch 2.13: build it with its C++ ops (about 11 min on 2 cores; pip's
# wheel cache keeps the result, so later venvs on the same machine install it in seconds).
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${pip[@]}" --no-build-isolation mmcv==2.1.0
fi
"${pip[@]}" --no-deps -e .
"$VENV/bin/python" -c "import torch, tensorflow, mmcv.ops, mmdet, apache_beam; print('stack ok: torch', torch.__version__, 'tf', tensorflow.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'beam', apache_beam.__version__)"
