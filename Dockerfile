# GPU image for m2ugen: the data pipeline (vLLM dialogue generation, BLIP/VideoMAE captioning), the Prefect
# worker and the trainer. Build on a machine with Docker:  docker build -t m2ugen .
# The base image already carries a CUDA build of PyTorch, so pip sees torch satisfied and never swaps in a
# CPU wheel. vllm pins its own torch version; if it disagrees with the base image, pip replaces torch with the
# CUDA build vllm asks for (still CUDA: vllm's wheels are CUDA builds).
FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    M2UGEN_WAREHOUSE=/data/warehouse \
    HF_HUB_OFFLINE=1
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg git && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/m2ugen
COPY pyproject.toml README.md ./
COPY m2ugen_data ./m2ugen_data
COPY m2ugen_model ./m2ugen_model
COPY flows ./flows
RUN pip install --no-cache-dir ".[gpu]"

# Weights live on the host and are mounted read-only, e.g. -v /models:/models:ro; data goes to /data.
VOLUME ["/data", "/models"]

# Entry points (pick one per container):
#   docker run --gpus all m2ugen m2ugen-data --help
#   docker run --gpus all m2ugen m2ugen-train --shards /data/warehouse --stage 3 --preset 7b ...
#   docker run --gpus all -e PREFECT_API_URL=http://prefect:4200/api m2ugen m2ugen-data serve
#   docker run --gpus all m2ugen torchrun --nproc_per_node 8 -m m2ugen_model.train_cli --shards /data/warehouse
CMD ["m2ugen-data", "--help"]
