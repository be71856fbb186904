"""bench/gpu/run.sh: with --cpu-safe vLLM is skipped with a reason and everything else really runs on the CPU
(the training step and its FSDP2 wrapping at the tiny shape, m2ugen-infer on the tiny weights, batched
captioning, the inference memory section's bf16 and offload paths), all printed in one table; and it does so
from a bare copy of the checkout, with a Python whose site has no m2ugen install (as on a lent GPU machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from paths import REPO

ROOT = REPO
TITLES = ("7B M2UGen stage-3 train step, bf16", "7B M2UGen stage-3 train step, FSDP2 1 rank",
          "m2ugen-infer text->music latency, tiny", "MU-LLaMA-style captioning, batched",
          "dialogues: vLLM vs transformers", "7B inference memory: bf16 / int8 / offload")


def _bare_checkout(dest: Path) -> Path:
    """The working tree's files (tracked and untracked, not ignored: no .venv, no egg-info) copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def _python_without_m2ugen(tmp: Path) -> Path:
    """This interpreter with -S (no .pth processing, so the editable m2ugen install is not seen) and its
    site-packages on PYTHONPATH: torch, transformers and the rest importable, m2ugen only from a checkout."""
    wrapper = tmp / "python-bare"
    site = sysconfig.get_paths()["purelib"]
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_cpu_safe_run_prints_one_table(tmp_path):
    checkout = _bare_checkout(tmp_path / "checkout")
    python = _python_without_m2ugen(tmp_path)
    probe = subprocess.run([str(python), "-c", "import m2ugen_model"], cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'm2ugen_model'" in probe.stderr  # no install to fall back on
    rows_dir = tmp_path / "rows"
    env = {**os.environ, "PYTHON": str(python), "M2UGEN_GPU_ROWS": str(rows_dir)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", str(checkout / "bench/gpu/run.sh"), "--cpu-safe"], capture_output=True, text=True,
                          env=env, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"m2ugen from {checkout}" in proc.stderr
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in proc.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert set(table) == set(TITLES)
    rows = {p.stem: json.loads(p.read_text()) for p in rows_dir.glob("*.json")}
    assert {r["what"]: r["status"] for r in rows.values()} == table
    assert rows["vllm"]["status"] == "skipped" and "needs CUDA" in rows["vllm"]["detail"]
    for name in ("train7b", "fsdp7b"):  # the same step code, tiny shape, CPU (gloo for FSDP2)
        assert rows[name]["status"] == "ok" and rows[name]["value"].endswith("tokens/s")
        assert "tiny shape on CPU" in rows[name]["detail"]
    assert rows["infer"]["status"] == "ok" and rows["infer"]["value"].endswith("s/request (median)")
    assert "cpu, 2 requests" in rows["infer"]["detail"]
    assert rows["caption"]["status"] == "ok" and "captions/s at batch 4" in rows["caption"]["value"]
    r = rows["infer7b"]
    assert r["status"] == "ok" and "tok/s" in r["value"]
    assert "2 blocks offloaded" in r["detail"] and "int8 skipped" in r["detail"]


def test_table_reports_failed_and_missing_sections(tmp_path):
    (tmp_path / "caption.json").write_text(json.dumps(
        {"status": "failed", "value": "-", "detail": "RuntimeError: boom", "seconds": 1.0}))
    out = subprocess.run([sys.executable, str(ROOT / "bench/gpu/gpu_bench.py"), "table", str(tmp_path)],
                         capture_output=True, text=True, timeout=120).stdout
    assert "RuntimeError: boom" in out and out.count("timed out") == 5


def test_missing_optional_dependency_is_a_skipped_row(tmp_path, monkeypatch):
    """A section whose import fails records "skipped: needs X" (and says so), not a failure."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "bench/gpu/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def needs_pydantic(cpu_safe):
        raise ModuleNotFoundError("No module named 'pydantic'", name="pydantic")

    monkeypatch.setitem(bench.SECTIONS, "infer", ("m2ugen-infer text->music latency, tiny", needs_pydantic))
    assert bench.run_section("infer", tmp_path / "infer.json", cpu_safe=True) == 0
    row = json.loads((tmp_path / "infer.json").read_text())
    assert row["status"] == "skipped" and row["detail"] == "needs pydantic"
