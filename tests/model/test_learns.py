"""The model learns, end to end: the tiny preset trained through stages 1 -> 2 -> 3 on demo-like shards (real
FLAC audio through the tiny MERT, MUEdit dialogues, Alpaca and MusicQA converted from their public layouts),
then ``m2ugen-infer`` writes music and an answer from the stage-3 checkpoint. A reduced run of
``bench/bench_learns.py``: the [AUD]-rate and music-QA measurements need more steps and greedy decoding, so
they live in the bench (table in docs/BENCHMARKS.md); here each stage's loss must fall on held-out data."""

from __future__ import annotations

import sys

import pytest
import torch
from paths import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench_learns  # noqa: E402


@pytest.mark.slow
def test_three_stages_each_do_their_job_and_infer_uses_the_result(tiny_model_dir, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core box: more threads only contend
    try:
        plan = bench_learns.Plan(steps=(15, 10, 30), batch=6, n_clips=12, n_heldout=6, n_edit=12, generation=False)
        res = bench_learns.run(tmp_path, plan, weights=tiny_model_dir)
    finally:
        torch.set_num_threads(threads)
    n = res.numbers
    assert n["ce_stage1"] < n["ce_untrained"] - 1.0, res.rows  # stage 1: captions of unseen clips, > 1 nat/token
    assert n["mse_stage2"] < 0.9 * n["mse_before"], res.rows  # stage 2: the projector aligns on unseen clips
    assert n["ce_stage3_last"] < 0.6 * n["ce_stage3_first"], n  # stage 3: the instructions are learned
    inf = res.infer
    assert inf["compose_exit"] == 0 and inf["answer_exit"] == 0, (inf["compose_output"], inf["answer_output"])
    assert inf["music_seconds"] > 0 and isinstance(inf["answer_text"], str)
