# One recipe for both images, the same set-up as on a bare machine: scripts/run.sh builds the environment
# at build time (the CI runs the same script).
#   docker build -t seal-lightning:cpu .
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 --build-arg ACCELERATOR=cuda \
#       -t seal-lightning:cuda .
# The CUDA image installs `.[gpu]` (plain vllm and its CUDA torch); run it with `docker run --gpus all`.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG ACCELERATOR=cpu
# Package versions are left to the base image's release: pinning them breaks the build whenever the
# archive drops a point release, and the Python environment, which is what matters, is pinned by run.sh.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ git \
    && if ! command -v python3 >/dev/null; then \
        apt-get install -y --no-install-recommends python3 python3-venv python3-dev; fi \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/seal-lightning
COPY . .
ENV SEAL_VENV=/opt/venv SEAL_ACCELERATOR=${ACCELERATOR}
RUN bash scripts/run.sh python -c "import seal_lightning"
ENTRYPOINT ["bash", "scripts/run.sh", "python", "-m", "seal_lightning"]
CMD ["fit", "--config", "conf/demo.yaml"]
