"""``m2ugen-data check``: on published-layout fixtures it says ok; each injected defect is found, in its row,
with a fix; library versions are judged against the project's declared ranges."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2ugen_data.cli import app
from m2ugen_data.testing.dialogue_layouts import write_mpt_7b_chat, write_qwen25_instruct
from m2ugen_data import model_checks as pipeline
from m2ugen_data.testing.vision_layouts import write_blip_captioning_base, write_video_captioner_sources


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check_models")
    return {
        "mpt": write_mpt_7b_chat(root / "mpt-7b-chat"),
        "qwen": write_qwen25_instruct(root / "qwen"),
        "blip": write_blip_captioning_base(root / "blip"),
    } | write_video_captioner_sources(root)


def check(*args: str) -> tuple[int, list[dict]]:
    res = CliRunner().invoke(app, ["check", "--format", "json", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return res.exit_code, rows


def problems(rows: list[dict]) -> dict[str, dict]:
    return {r["check"]: r for r in rows if r["status"] == "PROBLEM"}


def test_published_layouts_pass(models):
    code, rows = check(
        "--dialogue-backend", "transformers", "--dialogue-model", str(models["mpt"]), "--blip", str(models["blip"]),
        "--video-captioner", str(models["model"]), "--processor-dir", str(models["processor"]),
        "--tokenizer-dir", str(models["tokenizer"]), "--mu-llama", str(models["mpt"].parent),
    )
    assert code == 0 and not problems(rows), rows
    names = {r["check"] for r in rows}
    assert {"torch", "transformers", "dialogue LLM (transformers)", "BLIP", "video captioner",
            "video image processor", "video tokenizer", "MU-LLaMA"} <= names


def test_each_injected_defect_is_found_with_its_fix(models, tmp_path):
    llm = Path(shutil.copytree(models["qwen"], tmp_path / "qwen"))
    shard = sorted(llm.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-64])
    blip = Path(shutil.copytree(models["blip"], tmp_path / "blip"))
    for f in ("vocab.txt", "tokenizer.json"):
        (blip / f).unlink()
    code, rows = check(
        "--dialogue-backend", "transformers", "--dialogue-model", str(llm), "--blip", str(blip),
        "--video-captioner", str(models["blip"]), "--processor-dir", str(tmp_path), "--mu-llama", str(tmp_path / "none"),
    )
    found = problems(rows)
    assert code == 1
    assert "truncated safetensors" in found["dialogue LLM (transformers)"]["problem"]
    assert found["dialogue LLM (transformers)"]["path"] == str(shard)
    assert "no tokenizer" in found["BLIP"]["problem"] and found["BLIP"]["fix"]
    assert "expected a VisionEncoderDecoderModel" in found["video captioner"]["problem"]
    assert found["video image processor"]["path"] == str(tmp_path) and "--processor-dir" in found["video image processor"]["fix"]
    assert found["MU-LLaMA"]["problem"] == "no such directory"


def test_vllm_release_is_judged_against_the_architecture(models):
    code, rows = check("--dialogue-backend", "vllm", "--dialogue-model", str(models["mpt"]), "--vllm-version", "0.34.0")
    row = problems(rows)["dialogue LLM (vllm)"]
    assert code == 1 and "cannot serve MPTForCausalLM" in row["problem"] and "vllm==0.28.0" in row["fix"]
    code, rows = check("--dialogue-backend", "vllm", "--dialogue-model", str(models["mpt"]), "--vllm-version", "0.28.0")
    assert code == 0, rows
    code, _ = check("--dialogue-backend", "vllm", "--dialogue-model", str(models["qwen"]), "--vllm-version", "0.34.0")
    assert code == 0


def test_library_versions_are_judged_against_the_declared_ranges(monkeypatch):
    from packaging.requirements import Requirement

    monkeypatch.setattr(pipeline, "project_requirements", lambda: [Requirement("transformers>=99"), Requirement("torch>=2.4")])
    code, rows = check()
    assert code == 1 and problems(rows)["transformers"]["problem"] == "this project needs transformers>=99"
    assert {r["check"] for r in rows} == {"transformers", "torch"}


def test_requirements_read_from_pyproject_without_an_installed_package(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", missing)
    names = {r.name for r in pipeline.project_requirements()}
    assert {"transformers", "torch", "vllm"} <= names


class _Models(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "mpt-7b-chat", "object": "model"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_openai_server_is_asked_for_its_models():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        assert check("--dialogue-backend", "openai", "--dialogue-model", "mpt-7b-chat", "--base-url", url)[0] == 0
        code, rows = check("--dialogue-backend", "openai", "--dialogue-model", "other", "--base-url", url)
        assert code == 1 and "serves ['mpt-7b-chat'], not 'other'" in problems(rows)["dialogue server"]["problem"]
    finally:
        server.shutdown()
        server.server_close()
    code, rows = check("--dialogue-backend", "openai", "--dialogue-model", "m", "--base-url", url)
    assert code == 1 and "no OpenAI-compatible server answers" in problems(rows)["dialogue server"]["problem"]
