"""bench/gpu/run.sh: with --cpu-safe vLLM is skipped with a reason and everything else really runs on the CPU
(the training step and its FSDP2 wrapping at the tiny shape, m2ugen-infer on the tiny weights, batched
captioning, the inference memory section's bf16 and offload paths), all printed in one table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TITLES = ("7B M2UGen stage-3 train step, bf16", "7B M2UGen stage-3 train step, FSDP2 1 rank",
          "m2ugen-infer text->music latency, tiny", "MU-LLaMA-style captioning, batched",
          "dialogues: vLLM vs transformers", "7B inference memory: bf16 / int8 / offload")


def test_cpu_safe_run_prints_one_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "M2UGEN_GPU_ROWS": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "bench/gpu/run.sh"), "--cpu-safe"], capture_output=True, text=True,
                          env=env, timeout=1200, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in proc.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert set(table) == set(TITLES)
    rows = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
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
