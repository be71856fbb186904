"""``make demo`` builds all four datasets, and ``m2ugen-train --shards <warehouse>/`` then works verbatim.

The demo runs in this process (on the session's Prefect server) with a few clips per dataset; the trainer
runs as the user would type it, as a subprocess with no flag but ``--shards``: a smoke run of the tiny preset
whose weights go to the cache directory, on the stage the shards support, ending with a checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from m2ugen_data.warehouse import open_warehouse

pytestmark = pytest.mark.slow

CLIPS = 8  # per dataset: every dataset keeps a few clips after the media and music rejections


@pytest.fixture(scope="module")
def demo(flow_api, tmp_path_factory) -> dict:
    from m2ugen_data import demo as demo_module

    root = tmp_path_factory.mktemp("demo") / "warehouse"
    saved = dict(os.environ)  # the demo sets Prefect defaults in the environment for its own process
    try:
        with demo_module.console.capture() as out:
            demo_module.app(["--warehouse", str(root), "--clips", str(CLIPS)], standalone_mode=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"root": root, "output": out.get()}


def test_demo_builds_all_four_datasets(demo):
    wh = open_warehouse(demo["root"])
    shards = wh.connect().execute("SELECT dataset, sum(samples) FROM shards_latest GROUP BY 1").fetchall()
    assert {d for d, n in shards if n > 0} == {"mucaps", "muedit", "muimage", "muvideo"}
    for dataset in ("mucaps", "muedit", "muimage", "muvideo"):
        assert f"build-{dataset} on {CLIPS} synthetic clips" in demo["output"]
        assert (demo["root"] / "shards" / dataset).is_dir()
    assert "example muedit dialogue" in demo["output"] and "measured by:" in demo["output"]


def test_demo_shows_exclusion_and_dedup(demo):
    """Each corpus plants (labelled in its truth) a clip under a MusicCaps ID and a copy of one of its clips:
    the demo must show the first rejected at selection and the second dropped as a near-duplicate."""
    import pyarrow.parquet as pq

    wh = open_warehouse(demo["root"])
    out = demo["output"]
    assert "clean evaluation:" in out
    rejects = wh.read("segment_rejects").column("reason").to_pylist()
    assert rejects.count("eval:musiccaps") == 4  # one per corpus
    planted = {r["clip_id"]: r["copy_of"] for t in demo["root"].glob("synth*/truth.parquet")
               for r in pq.read_table(t).to_pylist() if r["trouble"] == "planted_copy"}
    groups = {r["clip_id"]: r["group_id"] for r in wh.read("duplicates").to_pylist()}
    found = [c for c, original in planted.items() if c in groups and groups[c] == groups.get(original)]
    # the MUCaps and MUEdit corpora analyse every clip; MUImage/MUVideo only clips whose rendered video passes
    assert len(planted) == 4 and len(found) >= 2
    assert "contamination" in (demo["root"] / "report" / "index.html").read_text().lower()


def test_demo_ends_with_the_dataset_card(demo):
    pytest.importorskip("m2ugen_data.report")
    assert "dataset card" in demo["output"]
    assert (demo["root"] / "report" / "index.html").is_file()


def test_train_runs_verbatim_after_the_demo(demo, tmp_path):
    """The README's used-by command, exactly: a tiny CPU smoke run, weights written to $M2UGEN_CACHE."""
    cache = tmp_path / "cache"
    env = {**os.environ, "M2UGEN_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": ""}
    train = Path(sys.executable).parent / "m2ugen-train"
    proc = subprocess.run([str(train), "--shards", f"{demo['root']}/"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert (cache / "tiny-weights" / "preset.json").is_file()
    checkpoints = sorted((tmp_path / "runs" / "tiny-smoke" / "checkpoints").glob("step_*"))
    assert checkpoints and (checkpoints[-1] / "trainable.safetensors").is_file()
    assert "stage 1 on mucaps, muimage, muvideo" in out  # the first stage the demo's shards support
    assert "--preset 7b" in out and "torchrun" in out  # the command for a real run


def test_7b_without_weights_names_every_missing_directory(demo, tmp_path):
    from typer.testing import CliRunner

    from m2ugen_model.train.cli import app

    result = CliRunner().invoke(app, ["--shards", str(demo["root"]), "--preset", "7b", "--llama-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    for expected in (f"--llama-dir {tmp_path / 'nope'} (not a directory)", "--mert-dir (not given)",
                     "--vit-dir (not given)", "--vivit-dir (not given)"):
        assert expected in lines[0]
    assert "--decoder-dir" not in lines[0]  # stage 1 does not load the music decoder


def test_the_stage_follows_the_shards_and_user_settings_win():
    from m2ugen_model.train import first_run

    assert first_run.default_stage({"mucaps", "muedit", "muimage", "muvideo"}) == 1
    assert first_run.default_stage({"muimage"}) == 1
    assert first_run.default_stage({"muedit"}) == 3  # only instruction data: stage 3
    filled = first_run.fill_defaults({"shards": ["w/"], "max_steps": 3}, {"muedit"})
    assert filled["stage"] == 3 and "max_steps" not in filled and filled["weights_dir"].endswith("tiny-weights")
    assert first_run.fill_defaults({"shards": ["w/"], "stage": 2, "preset": "7b"}, {"mucaps"}) == {}
