"""One set of defaults for every front door: the ``m2ugen-data`` commands, the Prefect flows (and so their
deployments, which take the flows' parameter models) and the library functions both call.

For every option a CLI command and a flow parameter group both expose, the CLI's default (read from the
typer command's parameters) must equal the flow model's default; options are matched by name within the
models listed for the command, plus the renames below. Before the defaults lived once in
``m2ugen_data.defaults``, the synthetic corpus' sibling fraction (0.5 vs 0.6), the caption batch (512 vs 256)
and the shard writer's threads (1 vs 2) differed between the two doors.
"""

from __future__ import annotations

import dataclasses
import inspect
from enum import Enum
from typing import Any

import pytest
import typer.main
from pydantic import BaseModel

from flows import params
from m2ugen_data.cli import app

# CLI command -> (flow parameter models whose same-named fields are the same option, {cli option: Model.field})
SHARED: dict[str, tuple[list[type[BaseModel]], dict[str, str]]] = {
    "synth": ([params.SyntheticSource], {}),
    "audioset select": ([params.AudioSetSource], {"exclude_label": "AudioSetSource.exclude_labels",
                                                  "window": "AudioSetSource.window_s"}),
    "audioset download": (
        [params.AudioSetSource],
        {"concurrency": "AudioSetSource.download_concurrency", "limit": "AudioSetSource.download_limit",
         "rate_limit": "AudioSetSource.requests_per_s", "window": "AudioSetSource.window_s",
         "max_duration": "AudioSetSource.max_duration_s"},
    ),
    "pairs mine": ([params.PairOptions], {}),
    "caption": (
        [],
        {"backend": "TextBackends.caption_backend", "model_dir": "TextBackends.caption_model_dir",
         "device": "TextBackends.device", "batch_size": "RunOptions.caption_batch_size"},
    ),
    "dialogue": (
        [params.TextBackends],
        {"backend": "TextBackends.dialogue_backend", "model": "TextBackends.dialogue_model",
         "timeout": "TextBackends.timeout_s", "batch_size": "RunOptions.dialogue_batch_size"},
    ),
    "media frames": ([], {"candidates": "VisualOptions.frame_candidates"}),
    "media clips": ([params.VisualOptions], {}),
    "caption-visual": (
        [params.VisualOptions],
        {"backend": "VisualOptions.caption_backend", "model_dir": "VisualOptions.caption_model_dir",
         "batch_size": "VisualOptions.caption_batch_size"},
    ),
    "shards write": (
        [],
        {"max_samples": "RunOptions.shard_max_samples", "max_bytes": "RunOptions.shard_max_bytes",
         "workers": "RunOptions.shard_workers"},
    ),
    "serve": ([params.TaskRunnerChoice], {"task_runner": "TaskRunnerChoice.kind"}),
}
# CLI defaults of None (or empty) that the command resolves to a value in its body: the resolved value
RESOLVED = {("audioset select", "segments"): "m2ugen_data.cli.audioset.DEFAULT_SEGMENTS"}


def plain(value: Any) -> Any:
    """Enum members as their values, sequences as lists, so a CLI and a pydantic default compare."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def cli_defaults(command: str) -> dict[str, Any]:
    cmd = typer.main.get_command(app)
    for part in command.split():
        cmd = cmd.commands[part]
    # a repeatable option's None default is the empty list
    out = {p.name: [] if p.multiple and p.default is None else plain(p.default) for p in cmd.params}
    for (where, name), dotted in RESOLVED.items():
        if where == command and not out.get(name):
            module, _, attr = dotted.rpartition(".")
            out[name] = plain(getattr(__import__(module, fromlist=[attr]), attr))
    return out


def flow_default(dotted: str) -> Any:
    model_name, field = dotted.split(".")
    model = getattr(params, model_name)
    assert field in model.model_fields, f"{dotted}: no such flow parameter"
    return plain(model.model_fields[field].get_default(call_default_factory=True))


def shared_options(command: str) -> dict[str, str]:
    """CLI option -> Model.field for every option of ``command`` the flows also expose."""
    models, renames = SHARED[command]
    defaults = cli_defaults(command)
    assert set(renames) <= set(defaults), f"{command}: renamed options {set(renames) - set(defaults)} do not exist"
    out = dict(renames)
    for name in defaults:
        for model in models:
            if name not in out and name in model.model_fields:
                out[name] = f"{model.__name__}.{name}"
    return out


@pytest.mark.parametrize("command", sorted(SHARED))
def test_cli_defaults_equal_flow_defaults(command):
    defaults = cli_defaults(command)
    shared = shared_options(command)
    assert shared, f"{command}: no option shared with the flows"
    differ = {
        opt: (defaults[opt], flow_default(field)) for opt, field in shared.items() if defaults[opt] != flow_default(field)
    }
    assert not differ, f"{command}: CLI default vs flow default differ for {differ}"


def test_the_options_that_once_disagreed_are_covered():
    """The CLI/flow disagreements once found (key rule, sibling fraction, caption batch, shard threads) are among
    the options checked."""
    assert "key_rule" in shared_options("pairs mine")
    assert "sibling_fraction" in shared_options("synth")
    assert shared_options("caption")["batch_size"] == "RunOptions.caption_batch_size"
    assert shared_options("shards write")["workers"] == "RunOptions.shard_workers"


def test_music_filter_cli_defaults_are_what_the_flows_apply():
    """The flows re-apply ``MusicFilterConfig()``; ``analyze`` and ``analyze filter`` must default to the same."""
    from m2ugen_data.analysis.music_filter import MusicFilterConfig

    cfg = MusicFilterConfig()
    expected = {"max_speech": cfg.max_speech_ratio, "min_lufs": cfg.min_loudness_lufs,
                "max_lufs": cfg.max_loudness_lufs, "no_label_check": not cfg.require_music_label,
                "min_music_score": cfg.min_music_score}
    for command in ("analyze", "analyze filter"):
        got = cli_defaults(command)
        assert {k: got[k] for k in expected} == expected, command


def test_dialogue_sampling_defaults_are_the_libraries():
    from m2ugen_data.dialogues.backend import GenerationParams

    got = cli_defaults("dialogue")
    gen = GenerationParams()
    assert {k: got[k] for k in ("max_new_tokens", "temperature", "top_p", "top_k")} == {
        "max_new_tokens": gen.max_new_tokens, "temperature": gen.temperature, "top_p": gen.top_p, "top_k": gen.top_k
    }


def parameter_default(fn: Any, name: str) -> Any:
    return plain(inspect.signature(fn).parameters[name].default)


def test_python_api_defaults_equal_flow_defaults():
    """The library functions the CLI and the tasks call default to the same values when called directly."""
    from m2ugen_data.audioset.download import DownloadConfig
    from m2ugen_data.captions.writer import write_captions
    from m2ugen_data.dialogues.writer import write_dialogues
    from m2ugen_data.shards import build_dataset_shards
    from m2ugen_data.synth import render_corpus

    download = {f.name: f.default for f in dataclasses.fields(DownloadConfig)}
    pairs = [
        (parameter_default(render_corpus, "sibling_fraction"), flow_default("SyntheticSource.sibling_fraction")),
        (parameter_default(render_corpus, "trouble_fraction"), flow_default("SyntheticSource.trouble_fraction")),
        (download["url_template"], flow_default("AudioSetSource.url_template")),
        (download["concurrency"], flow_default("AudioSetSource.download_concurrency")),
        (download["requests_per_s"], flow_default("AudioSetSource.requests_per_s")),
        (download["retry_failed"], flow_default("AudioSetSource.retry_failed")),
        (parameter_default(write_captions, "batch_size"), flow_default("RunOptions.caption_batch_size")),
        (parameter_default(write_dialogues, "batch_size"), flow_default("RunOptions.dialogue_batch_size")),
        (parameter_default(write_dialogues, "max_attempts"), flow_default("TextBackends.max_attempts")),
        (parameter_default(write_dialogues, "base_seed"), flow_default("TextBackends.seed")),
        (parameter_default(build_dataset_shards, "max_samples"), flow_default("RunOptions.shard_max_samples")),
        (parameter_default(build_dataset_shards, "max_bytes"), flow_default("RunOptions.shard_max_bytes")),
        (parameter_default(build_dataset_shards, "workers"), flow_default("RunOptions.shard_workers")),
    ]
    assert [a for a, _ in pairs] == [b for _, b in pairs]
