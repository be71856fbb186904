"""Flow plumbing without a server: parameter validation, task runner choice, count merging."""

from __future__ import annotations

import itertools
import sys

import pytest
from pydantic import ValidationError

from flows.params import RunOptions, SyntheticSource, TaskRunnerChoice, TextBackends
from flows.runners import choice_env, choice_from_env, make_task_runner
from flows.steps import chunked, merge_counts
from m2ugen_data.errors import MissingDependencyError


def test_parameter_groups_reject_typos_and_bad_values():
    with pytest.raises(ValidationError, match="extra"):
        SyntheticSource(n=4, sed=1)  # a typo must fail the run, not be ignored
    with pytest.raises(ValidationError):
        RunOptions(batch_size=0)
    with pytest.raises(ValidationError):
        TextBackends(dialogue_backend="gpt-9")
    # a partial group takes the defaults for what it leaves out (how a deployment run overrides a group)
    assert SyntheticSource.model_validate({"n": 6}) == SyntheticSource(n=6, seed=0)


def test_task_runner_choice_round_trips_through_the_environment(monkeypatch):
    choice = TaskRunnerChoice(kind="process", max_workers=3)
    for k, v in choice_env(choice).items():
        monkeypatch.setenv(k, v)
    assert choice_from_env() == choice
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    runner = make_task_runner()
    assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 3
    assert isinstance(make_task_runner(TaskRunnerChoice(kind="thread", max_workers=2)), ThreadPoolTaskRunner)


def test_dask_runner_choice_and_a_clear_error_without_prefect_dask(monkeypatch):
    from prefect_dask import DaskTaskRunner

    runner = make_task_runner(TaskRunnerChoice(kind="dask", dask_address="tcp://127.0.0.1:8786"))
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://127.0.0.1:8786"
    assert isinstance(runner.duplicate(), type(runner))  # Prefect runs each flow on a duplicate
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if the [dask] extra were not installed
    monkeypatch.setitem(sys.modules, "flows.dask_runner", None)
    with pytest.raises(MissingDependencyError, match="prefect-dask"):
        make_task_runner(TaskRunnerChoice(kind="dask"))


def test_merge_counts_and_chunks():
    merged = merge_counts([{"ok": 2, "status": {"ok": 2}, "files": ["a"]}, {"ok": 1, "status": {"ok": 1, "failed": 1}}])
    assert merged == {"ok": 3, "status": {"ok": 3, "failed": 1}}
    assert chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_visual_flows_have_deployments_and_their_own_synthetic_corpus(tmp_path):
    from flows.params import VisualOptions
    from flows.serve import deployments
    from flows.steps import own_corpus
    from m2ugen_data.synth.corpus import plan_corpus

    names = {f"{d.flow_name}/{d.name}" for d in deployments(str(tmp_path))}
    assert {"build-muimage/local", "build-muimage/audioset", "build-muvideo/local", "build-muvideo/audioset"} <= names
    with pytest.raises(ValidationError):
        VisualOptions(caption_backend="clip")
    given = SyntheticSource(n=5)  # a run that overrides the group gets seed 0, as build-muedit's default
    corpora = {ds: own_corpus(str(tmp_path), ds, ds, given) for ds in ("muimage", "muvideo", "mucaps")}
    assert corpora["muimage"].corpus_dir == str(tmp_path / "synth-muimage")
    ids = {ds: {p.clip_id for p in plan_corpus(5, c.seed, 0.0, 0.0)} for ds, c in corpora.items()}
    ids["muedit"] = {p.clip_id for p in plan_corpus(5, given.seed, 0.0, 0.0)}
    assert own_corpus(str(tmp_path), "muedit", "muedit", given) == given.model_copy(
        update={"corpus_dir": str(tmp_path / "synth")}
    )  # the demo's corpus is unchanged
    for a, b in itertools.combinations(ids, 2):
        assert not ids[a] & ids[b], (a, b)
    assert own_corpus(str(tmp_path), "muimage", "muimage", SyntheticSource(corpus_dir="/c")).corpus_dir == "/c"
