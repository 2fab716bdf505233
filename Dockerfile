# Custom Beam SDK container for Dataflow GPU workers (see README, "Running on Dataflow").
# Build: docker build -t REGION-docker.pkg.dev/PROJECT/REPO/bg-obj-remover:0.1.0 .
# Versions match constraints.txt; the Beam SDK must equal the launcher's apache-beam (2.77.0).
ARG BEAM_VERSION=2.77.0

# The SDK harness boot entrypoint comes from the matching official image.
FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam_sdk

# devel image: mmcv's CUDA ops are compiled with nvcc below.
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
# Ubuntu's archive replaces exact package versions with security updates, so apt stays unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-dev python3.11-venv build-essential git libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv \
 && pip install --upgrade pip==26.3 setuptools==80.10.2 wheel==0.48.0 ninja==1.13.2

WORKDIR /opt/bg-obj-remover
COPY constraints.txt requirements.txt ./
# torch built for CUDA 12.8 (constraints.txt pins the CPU wheel for laptops and CI, so drop that
# pin here); TensorFlow with its CUDA libraries from pip.
RUN grep -v '^torch==' constraints.txt > /tmp/constraints-gpu.txt \
 && pip install --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 \
 && pip install -c /tmp/constraints-gpu.txt -r requirements.txt "tensorflow[and-cuda]==2.21.0"

# mmcv 2.1.0 with CUDA ops for the GPUs Dataflow offers: T4 (7.5), A100 (8.0), L4 (8.9), H100 (9.0).
RUN MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="7.5;8.0;8.9;9.0" MAX_JOBS=8 \
    pip install --no-build-isolation -c /tmp/constraints-gpu.txt mmcv==2.1.0

# Into site-packages only: a copy of the sources in the working folder, where the SDK harness
# starts (`python -m`, so that folder comes first on sys.path), would shadow the launcher's newer
# code that --setup_file installs on each worker.
COPY . /tmp/bg-obj-remover
RUN pip install --no-deps /tmp/bg-obj-remover && rm -rf /tmp/bg-obj-remover

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
