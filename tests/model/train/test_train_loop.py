"""Trainer loop on the tiny preset (real on-disk weights): overfit, exact resume, torchrun DDP, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m2ugen_model.train.model_bridge import from_preset
from m2ugen_model.train.config import TrainConfig, build_config
from m2ugen_model.train.errors import TrainError
from m2ugen_model.train.loop import Dist, train
from paths import SUPPORT
from train_fixtures import FEATS, TARGET, write_mucaps, write_muedit

torch.set_num_threads(1)  # a shared 2-core box: threads only contend


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wh")
    write_muedit(root, 8, 2, feats=FEATS, target=TARGET)
    write_mucaps(root, 4, 2)
    return root


def cfg(wh: Path, out: Path, **kw) -> TrainConfig:
    base = dict(shards=[str(wh)], stage=3, max_steps=2, batch_size=2, lr=1e-2, warmup=0, num_workers=0,
                out=str(out), progress=False, max_len=256, shuffle_buffer=4, bucket_batches=1, audio_seconds=0.25)
    return TrainConfig(**{**base, **kw})


def test_overfit_a_handful_of_samples(weights: str, tmp_path: Path):
    """Four MUEdit samples, every step the same batch: CE must fall by a large factor within 15 steps."""
    write_muedit(tmp_path, 4, 4, feats=FEATS, target=TARGET)
    bundle = from_preset("tiny", weights, stage=3)
    res = train(cfg(tmp_path, tmp_path / "run", max_steps=15, batch_size=4, lr=3e-2, min_lr_ratio=1.0), bundle, Dist())
    assert res.ce[0] > 5.0
    assert min(res.ce[-3:]) < res.ce[0] / 10, res.ce
    assert res.mse[-1] < res.mse[0], res.mse


def test_resume_continues_exactly(weights: str, wh: Path, tmp_path: Path):
    """2 optimizer steps of 3 micro-batches (2 data workers, so the checkpoint falls mid-rotation) straight,
    versus 1 step, a fresh process state, and --resume for the second: same losses, same parameters."""
    common = dict(max_steps=2, grad_accum=3, num_workers=2, save_every=1)
    straight = train(cfg(wh, tmp_path / "a", **common), from_preset("tiny", weights, stage=3), Dist())
    first = train(cfg(wh, tmp_path / "b", **{**common, "max_steps": 1}), from_preset("tiny", weights, stage=3), Dist())
    torch.manual_seed(1234)  # disturb the RNGs: resume must restore them
    second = train(cfg(wh, tmp_path / "b", **common, resume=True), from_preset("tiny", weights, stage=3), Dist())
    assert len(second.losses) == 1
    assert first.losses + second.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-6)
    a = load_file(str(straight.checkpoint / "trainable.safetensors"))
    b = load_file(str(second.checkpoint / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    keys = lambda p: [json.loads(x)["keys"] for x in (p / "logs/samples_rank0.jsonl").read_text().splitlines()]
    assert keys(tmp_path / "a") == keys(tmp_path / "b")


def test_stage_init_from_previous_checkpoint(weights: str, wh: Path, tmp_path: Path):
    res = train(cfg(wh, tmp_path / "s2", stage=2, max_steps=1), from_preset("tiny", weights, stage=2), Dist())
    saved = load_file(str(res.checkpoint / "trainable.safetensors"))
    bundle = from_preset("tiny", weights, stage=3)
    train(cfg(wh, tmp_path / "s3", max_steps=1, init_from=str(res.checkpoint), lr=1e-9), bundle, Dist())
    params = dict(bundle.model.named_parameters())
    assert saved and all(torch.allclose(params[k].detach(), v, atol=1e-5) for k, v in saved.items())


def test_stage_chain_carries_earlier_stages_weights(weights: str, wh: Path, tmp_path: Path):
    """1 -> 2 -> 3: stage 2 does not train the stage-1 adapters, yet its checkpoint must hold them (as loaded),
    so stage 3 started from stage 2 alone (and inference from one checkpoint) has every trained weight."""
    s1 = train(cfg(wh, tmp_path / "s1", stage=1, max_steps=1), from_preset("tiny", weights, stage=1), Dist())
    stage1 = load_file(str(s1.checkpoint / "trainable.safetensors"))
    s2 = train(cfg(wh, tmp_path / "s2", stage=2, max_steps=1, init_from=str(s1.checkpoint)),
               from_preset("tiny", weights, stage=2), Dist())
    stage2 = load_file(str(s2.checkpoint / "trainable.safetensors"))
    trained_in_2 = set(from_preset("tiny", weights, stage=2).trainable_names(2))
    inherited = {k: v for k, v in stage1.items() if k not in trained_in_2}
    assert inherited, "stage 1 trains something stage 2 does not"
    assert all(torch.equal(stage2[k], v) for k, v in inherited.items())
    bundle = from_preset("tiny", weights, stage=3)
    train(cfg(wh, tmp_path / "s3", max_steps=1, init_from=str(s2.checkpoint), lr=1e-9), bundle, Dist())
    params = dict(bundle.model.named_parameters())
    assert all(torch.allclose(params[k].detach(), v, atol=1e-5) for k, v in inherited.items())


@pytest.mark.slow
def test_torchrun_two_ranks_stay_in_sync(weights: str, wh: Path, tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SUPPORT / "train_dist_worker.py"), str(wh / "shards" / "muedit"), weights, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (load_file(str(tmp_path / f"params_rank{r}.safetensors")) for r in range(2))
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)
    seen = [{k for line in (tmp_path / f"logs/samples_rank{r}.jsonl").read_text().splitlines()
             for k in json.loads(line)["keys"]} for r in range(2)]
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_cli_dry_run_and_errors(weights: str, wh: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from m2ugen_model.train.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["--shards", str(wh), "--stage", "1", "--preset", "tiny", "--weights-dir", weights,
                             "--batch-size", "2", "--dry-run", "--max-len", "256"])
    assert ok.exit_code == 0, ok.output[-2000:]
    assert "mucaps" in ok.output and "trainable" in ok.output and "audio_feats" in ok.output
    bad = runner.invoke(app, ["--shards", str(tmp_path / "none"), "--stage", "1", "--weights-dir", weights])
    assert bad.exit_code == 2 and "no shards found" in bad.output and "Traceback" not in bad.output


def test_config_file_merges_with_flags(tmp_path: Path):
    (tmp_path / "run.yaml").write_text("stage: 2\nlr: 0.001\nbatch_size: 8\n")
    c = build_config(tmp_path / "run.yaml", {"lr": 0.5, "batch_size": None})
    assert (c.stage, c.lr, c.batch_size) == (2, 0.5, 8)
    (tmp_path / "bad.toml").write_text("stag = 2\n")
    with pytest.raises(TrainError, match="stag"):
        build_config(tmp_path / "bad.toml", {})
