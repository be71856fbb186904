"""The trainer under faults: SIGTERM checkpoints at a step boundary and exits 0; unreadable or
malicious checkpoints are one line naming the file; a resumed run logs each step once."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from m2ugen_model.train.model_bridge import from_preset
from m2ugen_model.train.checkpointing import LATEST, latest_checkpoint
from m2ugen_model.train.config import TrainConfig
from m2ugen_model.train.loop import Dist, train
from train_fixtures import FEATS, TARGET, write_muedit

BIN = Path(sys.executable).parent
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wh")
    write_muedit(root, 8, 2, feats=FEATS, target=TARGET)
    return root


SMALL = dict(stage=3, batch_size=2, lr=1e-3, warmup=0, max_len=256, shuffle_buffer=4, bucket_batches=1,
             audio_seconds=0.25, progress=False)


def _steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigterm_checkpoints_at_the_next_step_and_exits_0(weights: str, wh: Path, tmp_path: Path):
    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps({k: v for k, v in SMALL.items() if k != "progress"}))
    log = tmp_path / "train.log"
    cmd = [str(BIN / "m2ugen-train"), "--config", str(config), "--shards", str(wh), "--preset", "tiny",
           "--weights-dir", weights, "--max-steps", "100000", "--num-workers", "1", "--out", str(out), "--no-progress"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while not ((out / "logs" / "metrics.jsonl").is_file() and len(_steps(out)) >= 2):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no training steps in 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as a scheduler does: data workers included
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert rc == 0, output[-3000:]
    assert "stopped by SIGTERM" in output and "--resume" in output and "Traceback" not in output, output[-3000:]
    ckpt = latest_checkpoint(out)
    steps = _steps(out)
    assert ckpt is not None and ckpt.name == f"step_{steps[-1]:07d}" and steps == list(range(1, steps[-1] + 1))

    resumed = train(TrainConfig(shards=[str(wh)], out=str(out), max_steps=steps[-1] + 1, resume=True,
                                num_workers=0, **SMALL), from_preset("tiny", weights, stage=3), Dist())
    assert resumed.step == steps[-1] + 1 and len(resumed.losses) == 1


def test_resume_after_a_kill_logs_each_replayed_step_once(weights: str, wh: Path, tmp_path: Path):
    out = tmp_path / "run"
    base = dict(shards=[str(wh)], out=str(out), num_workers=0, save_every=2, **SMALL)
    train(TrainConfig(max_steps=3, **base), from_preset("tiny", weights, stage=3), Dist())
    # as if killed after step 3 was logged but before its checkpoint: the latest checkpoint is step 2
    (out / "checkpoints" / LATEST).write_text("step_0000002\n")
    train(TrainConfig(max_steps=4, resume=True, **base), from_preset("tiny", weights, stage=3), Dist())
    assert _steps(out) == [1, 2, 3, 4]
    sample_steps = [json.loads(x)["step"] for x in (out / "logs" / "samples_rank0.jsonl").read_text().splitlines()]
    assert sample_steps == [0, 1, 2, 3]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_or_corrupt_checkpoints_are_refused_in_one_line(weights: str, wh: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from m2ugen_model.train.cli import app

    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"optimizer": _Evil(marker)}))
    common = ["--shards", str(wh), "--stage", "3", "--preset", "tiny", "--weights-dir", weights, "--max-steps", "1",
              "--batch-size", "2", "--max-len", "256", "--num-workers", "0", "--no-progress"]

    def one_line(args: list[str], names: Path) -> None:
        res = CliRunner().invoke(app, common + args)
        errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]  # besides progress bars, logs
        assert res.exit_code == 2, res.output[-3000:]
        assert len(errors) == 1 and str(names) in errors[0] and "Traceback" not in res.output, res.output[-3000:]

    one_line(["--init-from", str(evil), "--out", str(tmp_path / "a")], evil)

    out = tmp_path / "b"
    ckpt = out / "checkpoints" / "step_0000001"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer.pt").write_bytes(evil.read_bytes())
    (ckpt / "rank_0.pt").write_bytes(evil.read_bytes())
    (out / "checkpoints" / LATEST).write_text("step_0000001\n")
    one_line(["--resume", "--out", str(out)], ckpt / "trainer.pt")

    (ckpt / "trainer.pt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    one_line(["--resume", "--out", str(out)], ckpt / "trainer.pt")
    assert not marker.exists()
