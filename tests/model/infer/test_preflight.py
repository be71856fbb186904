"""The preflight (m2ugen-infer check, m2ugen-train --check, and the same checks before every load) on the
published-layout fixtures: each injected defect is found, named with its file and fix, in one table; a run
stops at it in one line before any model is built."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from m2ugen_model.infer.cli import app as infer_app

runner = CliRunner()


@pytest.fixture(scope="module")
def release(published_m2ugen) -> Path:
    return published_m2ugen


@pytest.fixture(scope="module")
def mu_llama_ckpt(published_mu_llama) -> Path:
    return published_mu_llama / "checkpoint.pth"


@pytest.fixture
def broken(release, tmp_path) -> Path:
    """A copy of the release to break."""
    return Path(shutil.copytree(release, tmp_path / "release"))


def _cut(f: Path, keep: float = 0.5) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])


def _json_edit(f: Path, **changes) -> None:
    f.write_text(json.dumps({**json.loads(f.read_text()), **changes}))


def _preset_edit(root: Path, **changes) -> None:
    _json_edit(root / "preset.json", **changes)


# (defect, component named, words the row must say); each edits the copied release in place
def _wrong_model_dir(r: Path, mu: Path) -> None:
    _preset_edit(r, mert_dir="vit-base-patch16-224")


def _missing_tokenizer(r: Path, mu: Path) -> None:
    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
        (r / "Llama-2-7b-hf" / f).unlink()


def _truncated_safetensors(r: Path, mu: Path) -> None:
    _cut(r / "Llama-2-7b-hf" / "model-00002-of-00002.safetensors")


def _truncated_pth(r: Path, mu: Path) -> None:
    _cut(r / "MERT-v1-330M" / "pytorch_model.bin")


def _other_architecture(r: Path, mu: Path) -> None:
    _json_edit(r / "Llama-2-7b-hf" / "config.json", model_type="mpt", architectures=["MPTForCausalLM"])


def _missing_shard(r: Path, mu: Path) -> None:
    (r / "Llama-2-7b-hf" / "model-00001-of-00002.safetensors").unlink()


def _llama_of_another_size(r: Path, mu: Path) -> None:
    _preset_edit(r, llama_dir="llama-2")
    _json_edit(r / "llama-2" / "llama-2-7b" / "params.json", n_layers=40)


def _mert_needing_hub_code(r: Path, mu: Path) -> None:
    _json_edit(r / "MERT-v1-330M" / "config.json", feature_extractor_cqt=True)


def _vit_without_processor(r: Path, mu: Path) -> None:
    (r / "vit-base-patch16-224" / "preprocessor_config.json").unlink()


def _truncated_musicgen(r: Path, mu: Path) -> None:
    _cut(r / "musicgen-small" / "pytorch_model.bin", 0.9)


DEFECTS: dict[str, tuple[Callable[[Path, Path], None], str, tuple[str, ...]]] = {
    "wrong model dir": (_wrong_model_dir, "MERT", ("model_type 'vit'", "another model", "--mert-dir")),
    "missing tokenizer": (_missing_tokenizer, "LLaMA-2 tokenizer", ("no tokenizer", "tokenizer.model")),
    "truncated safetensors": (_truncated_safetensors, "LLaMA-2", ("model-00002-of-00002.safetensors", "truncated",
                                                                  "download it again")),
    "truncated pth": (_truncated_pth, "MERT", ("pytorch_model.bin", "truncated", "download it again")),
    "config of another architecture": (_other_architecture, "LLaMA-2", ("MPTForCausalLM", "not LLaMA")),
    "missing shard": (_missing_shard, "LLaMA-2", ("model-00001-of-00002.safetensors", "not there")),
    "LLaMA of another size": (_llama_of_another_size, "LLaMA-2", ("params.json", "n_layers=40", "another size")),
    "MERT that needs hub code": (_mert_needing_hub_code, "MERT", ("CQT", "hub code")),
    "ViT without its processor": (_vit_without_processor, "ViT", ("preprocessor_config.json", "missing")),
    "truncated MusicGen": (_truncated_musicgen, "MusicGen", ("pytorch_model.bin", "download it again")),
}


def _check(weights: Path, *extra: str):
    """m2ugen-infer check on a wide terminal, so that table cells do not wrap mid-word."""
    res = runner.invoke(infer_app, ["--weights-dir", str(weights), *extra, "check"], env={"COLUMNS": "400"})
    return res.exit_code, res.output


def test_published_release_passes_the_preflight(release):
    code, out = _check(release, "--checkpoint", str(release / "M2UGen-MusicGen" / "checkpoint.pth"))
    assert code == 0 and "nothing missing" in out, out
    for part in ("LLaMA-2", "MERT", "ViT", "ViViT", "MusicGen", "checkpoint"):
        assert part in out


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_injected_defect_is_found_with_its_fix(broken, mu_llama_ckpt, defect):
    edit, component, words = DEFECTS[defect]
    edit(broken, mu_llama_ckpt)
    code, out = _check(broken)
    flat = " ".join(out.split())  # the table wraps long cells
    assert code == 1, out
    assert component in out and all(w in flat for w in words), out


def test_every_defect_at_once_in_one_table(broken, mu_llama_ckpt):
    """One check run lists every component's problem (a broken part never hides another)."""
    for name in ("truncated pth", "ViT without its processor", "truncated MusicGen", "missing tokenizer"):
        DEFECTS[name][0](broken, mu_llama_ckpt)
    code, out = _check(broken)
    assert code == 1 and out.count("✗") >= 4 and "4 blocking" in out, out


def test_released_checkpoint_of_the_other_model_is_named(release, mu_llama_ckpt):
    code, out = _check(release, "--checkpoint", str(mu_llama_ckpt))
    flat = " ".join(out.split())
    assert code == 1 and "released MU-LLaMA checkpoint" in flat and "--preset mu_llama_7b" in flat, out


def test_old_libraries_are_named_with_the_upgrade(release, monkeypatch):
    from m2ugen_model.preflight import versions

    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda p: "4.57.0" if p == "transformers" else real(p))
    code, out = _check(release)
    flat = " ".join(out.split())
    assert code == 1 and "transformers 4.57.0" in flat and "needs >=5.0" in flat and "pip install -U" in flat, out


def test_meta_tokenizer_model_without_sentencepiece_is_named(broken, monkeypatch):
    from m2ugen_model.preflight import versions

    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda p: None if p == "sentencepiece" else real(p))
    _preset_edit(broken, llama_dir="llama-2")
    code, out = _check(broken)
    flat = " ".join(out.split())
    assert code == 1 and "sentencepiece" in flat and "pip install 'sentencepiece'" in flat, out


@pytest.mark.parametrize("defect", ["truncated pth", "config of another architecture", "missing tokenizer"])
def test_a_run_stops_at_the_defect_before_building_the_model(broken, mu_llama_ckpt, defect, tmp_path, monkeypatch):
    """m2ugen-infer caption runs the same checks first: one line naming the file, and no model is built."""
    from m2ugen_model import presets

    def never(*a, **k):
        raise AssertionError("the model was built despite a blocking preflight finding")

    monkeypatch.setattr(presets, "build_model", never)
    edit, _, words = DEFECTS[defect]
    edit(broken, mu_llama_ckpt)
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(16000, dtype=np.float32), 16000)
    res = runner.invoke(infer_app, ["--weights-dir", str(broken), "caption", str(song)])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert all(w in lines[0] for w in words[:1]), lines[0]


def test_m2ugen_train_check_lists_the_same_findings(broken, mu_llama_ckpt, tmp_path):
    from train_fixtures import write_mucaps

    from m2ugen_model.train.cli import app as train_app

    DEFECTS["truncated pth"][0](broken, mu_llama_ckpt)
    write_mucaps(tmp_path, 2, 2)
    args = ["--shards", str(tmp_path), "--stage", "1", "--preset", "7b", "--weights-dir", str(broken)]
    res = CliRunner().invoke(train_app, [*args, "--check"])
    assert res.exit_code == 1 and "MERT" in res.output and "truncated" in res.output, res.output
    res = CliRunner().invoke(train_app, [*args, "--max-steps", "1"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and lines[-1].startswith("error:") and "pytorch_model.bin" in lines[-1], res.output
