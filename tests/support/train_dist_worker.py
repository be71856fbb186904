"""Run under torchrun by test_train_distributed.py: train the tiny preset, then dump this rank's parameters.

Not a test module itself; the test checks the dumps (identical across ranks) and the per-rank sample logs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from m2ugen_model.train.model_bridge import from_preset
from m2ugen_model.train.config import TrainConfig
from m2ugen_model.train.loop import init_distributed, train


def main(shards: str, weights: str, out: str) -> None:
    d = init_distributed()
    bundle = from_preset("tiny", weights, stage=3)
    cfg = TrainConfig(shards=[shards], stage=3, max_steps=2, batch_size=2, lr=1e-2, warmup=0, num_workers=0,
                      out=out, progress=False, max_len=256, shuffle_buffer=1, bucket_batches=1, resample=False,
                      audio_seconds=0.25)
    train(cfg, bundle, d)
    state = {n: p.detach().clone() for n, p in bundle.model.named_parameters() if p.requires_grad}
    save_file(state, str(Path(out) / f"params_rank{d.rank}.safetensors"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
