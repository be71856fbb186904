"""Counts that must be positive (workers, batch sizes, shard sizes, limits) are refused at the command line
with click's one-line "Invalid value" message, before any work starts: ``--workers 0`` or ``-1`` used to be
taken, and meant a pool of no processes or an empty batch."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from m2ugen_data.cli import app

CASES = [
    (["analyze"], "--workers"),
    (["analyze"], "--batch-size"),
    (["analyze"], "--limit"),
    (["audioset", "select"], "--limit"),
    (["audioset", "download"], "--concurrency"),
    (["audioset", "download"], "--flush-every"),
    (["audioset", "download"], "--max-attempts"),
    (["audioset", "download"], "--limit"),
    (["compact"], "--target-rows"),
    (["dedup"], "--workers"),
    (["pairs", "mine"], "--k"),
    (["pairs", "mine"], "--window"),
    (["pairs", "mine"], "--threads"),
    (["shards", "write", "-d", "mucaps"], "--workers"),
    (["shards", "write", "-d", "mucaps"], "--max-samples"),
    (["shards", "write", "-d", "mucaps"], "--max-bytes"),
    (["convert", "musicqa", "x.json"], "--max-samples"),
    (["synth"], "--n"),
]


@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize(("command", "option"), CASES, ids=[f"{' '.join(c[:2])} {o}" for c, o in CASES])
def test_a_count_below_one_is_refused_before_any_work(tmp_path, command: list[str], option: str, value: str) -> None:
    result = CliRunner().invoke(app, ["--warehouse", str(tmp_path / "wh"), *command, option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert not (tmp_path / "wh").exists()  # refused before the warehouse was even opened
