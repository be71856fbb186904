"""Model backends on a tiny random chat LM written to disk like real weights.

transformers runs in process; openai talks to a real ``transformers serve`` on loopback and to a fake server
that fails on purpose; vllm is checked for its import guard and config mapping (and runs on a GPU if one is
there).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.dialogues.backend import GenerationParams, Request
from m2ugen_data.dialogues.openai_backend import OpenAIBackend, api_key_from_env
from m2ugen_data.dialogues.prompts import build_prompt
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff
from m2ugen_data.testing.tiny_lm import build_tiny_chat_lm
from m2ugen_data.dialogues.transformers_backend import TransformersBackend
from m2ugen_data.dialogues.vllm_backend import VllmBackend, VllmConfig, llm_kwargs, sampling_kwargs
from m2ugen_data.dialogues.writer import write_dialogues
from m2ugen_data.errors import MissingDependencyError

DIFF = EditDiff(added_instruments=("flute",), tempo_src=90.0, tempo_tgt=120.0)


def _samples(n: int) -> list[DialogueSample]:
    facts = MusicFacts("t", tempo_bpm=120.0, key="A minor", instruments=("flute",))
    return [
        DialogueSample(
            "muedit",
            f"s{i:03d}__t{i:03d}",
            f"s{i:03d}",
            f"t{i:03d}",
            "slow guitar" + " piece" * (i % 5),
            "fast flute",
            facts,
            DIFF,
        )
        for i in range(n)
    ]


def _requests(n: int, seed: int = 0) -> list[Request]:
    return [Request(s, side, build_prompt(s, side), seed) for s in _samples(n) for side in ("human", "gpt")][:n]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads; on a shared box they only contend
    yield build_tiny_chat_lm(tmp_path_factory.mktemp("tiny_lm"))
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- transformers


def test_transformers_generates_in_batches_with_left_padding(tiny_lm):
    greedy = GenerationParams(max_new_tokens=8, temperature=0.0)
    batched = TransformersBackend(str(tiny_lm), batch_size=4, params=greedy)
    tok, lm = batched._load()
    assert tok.padding_side == "left"
    calls = []
    generate = lm.generate
    lm.generate = lambda **kw: calls.append(kw["input_ids"].shape) or generate(**kw)
    requests = _requests(6)
    out = batched.complete(requests)
    assert [c[0] for c in calls] == [4, 2]  # two generate calls for six prompts
    assert len({c[1] for c in calls}) == 2  # prompts of different lengths, padded per batch
    one_by_one = TransformersBackend(str(tiny_lm), batch_size=1, params=greedy)
    single = one_by_one.complete(requests)
    # left padding is right: greedy continuations do not depend on what else was in the batch
    assert [c.text for c in out] == [c.text for c in single]
    assert all(0 < c.tokens <= 8 for c in out)


def test_transformers_garbage_is_rejected_with_reasons(tiny_lm, warehouse):
    backend = TransformersBackend(str(tiny_lm), batch_size=16, params=GenerationParams(max_new_tokens=16))
    summary = write_dialogues(warehouse, _samples(6), backend, batch_size=6, max_attempts=2)
    assert summary.rejected == 6 and summary.accepted == 0 and summary.tokens > 0
    rows = warehouse.read("dialogues").to_pylist()
    for r in rows:
        assert r["status"] == "rejected" and r["attempts"] == 2 and r["backend"] == "transformers"
        assert r["model"] == str(tiny_lm)
        assert any(x.startswith("gpt:") for x in r["reasons"]) and any(x.startswith("human:") for x in r["reasons"])
        assert "gpt:missing_prefix" in r["reasons"] or "gpt:empty" in r["reasons"]


# ---------------------------------------------------------------- openai: transformers serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_tiny_lm(tiny_lm):
    """``transformers serve`` on loopback with the tiny model preloaded; stopped after the module."""
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists() and not shutil.which("transformers"):
        pytest.skip("transformers CLI not installed")
    port = _free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [
        str(exe if exe.exists() else shutil.which("transformers")),
        "serve",
        str(tiny_lm),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("transformers serve did not become ready in 120 s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(served_tiny_lm, tiny_lm, warehouse):
    backend = OpenAIBackend(
        str(tiny_lm), base_url=served_tiny_lm, concurrency=4, params=GenerationParams(max_new_tokens=6)
    )
    out = backend.complete(_requests(4, seed=11))
    assert all(c.error is None and isinstance(c.text, str) and 0 < c.tokens <= 6 for c in out), out
    assert backend.extras() == {}  # transformers serve refuses vLLM's fields (HTTP 422): dropped after one retry
    # the server honours the request seed; checked one request at a time, because concurrent requests share
    # the server's global RNG and interleave (a fresh-clone run showed different texts at concurrency 4)
    one_by_one = OpenAIBackend(
        str(tiny_lm), base_url=served_tiny_lm, concurrency=1, params=GenerationParams(max_new_tokens=6)
    )
    first, again = one_by_one.complete(_requests(4, seed=11)), one_by_one.complete(_requests(4, seed=11))
    assert [c.text for c in first] == [c.text for c in again]
    summary = write_dialogues(warehouse, _samples(3), backend, batch_size=3, max_attempts=2)
    assert summary.rejected == 3 and summary.tokens > 0
    for r in warehouse.read("dialogues").to_pylist():
        assert r["backend"] == "openai" and r["attempts"] == 2
        assert not any("backend_error" in x for x in r["reasons"]), r["reasons"]  # the server answered; the text failed


# ---------------------------------------------------------------- openai: a server that misbehaves

GOOD_HUMAN = "Add a flute and make it faster, around 120 BPM."
GOOD_GPT = "Here is a music that is fast and led by a flute."


class _Faulty(BaseHTTPRequestHandler):
    """Mode from the path prefix: /fail500, /slow, /badjson, /byseed (seed % 3: 500, bad JSON, good), /strict
    (422 when the body has vLLM's extra fields), /good (records the bodies)."""

    hits: dict[str, int] = {}
    seen: list[dict] = []  # request bodies of the "good" mode
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.split("/")[1]
        with self.lock:
            self.hits[mode] = self.hits.get(mode, 0) + 1
        if mode == "byseed":
            mode = ("fail500", "badjson", "good")[body["seed"] % 3]
        if mode == "strict" and {"top_k", "skip_special_tokens"} & set(body):
            return self._send(422, b'{"detail": "extra fields not permitted"}')
        if mode == "good":
            with self.lock:
                self.seen.append(body)
        if mode == "fail500":
            return self._send(500, b'{"error": "boom"}')
        if mode == "slow":
            time.sleep(1.0)
            return self._send(200, b"{}")
        if mode == "badjson":
            return self._send(200, b'{"choices": [{"tex')
        text = GOOD_GPT if "Here is a music that is" in body["prompt"].split("<|im_start|>user")[0] else GOOD_HUMAN
        reply = {"choices": [{"text": text, "index": 0}], "usage": {"completion_tokens": 9}}
        self._send(200, json.dumps(reply).encode())

    def _send(self, code: int, payload: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass


@pytest.fixture(scope="module")
def faulty_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _faulty_backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend("m", base_url=url, max_retries=2, backoff_s=0.01, timeout_s=0.3, concurrency=4, **kw)


@pytest.mark.parametrize("mode, error", [("fail500", "http_500"), ("badjson", "malformed_json"), ("slow", "timeout")])
def test_openai_retries_then_reports_the_failure(faulty_server, mode, error):
    _Faulty.hits.pop(mode, None)
    out = _faulty_backend(f"{faulty_server}/{mode}/v1").complete(_requests(2))
    assert [c.error for c in out] == [error, error] and all(c.text is None for c in out)
    assert _Faulty.hits[mode] == 2 * 3  # two requests, each tried once and retried twice


def test_openai_failures_never_crash_the_batch(faulty_server, warehouse):
    backend = _faulty_backend(f"{faulty_server}/byseed/v1")
    samples = _samples(9)
    one_try = write_dialogues(warehouse, samples, backend, batch_size=9, max_attempts=1)
    assert one_try.accepted + one_try.rejected == 9 and one_try.accepted > 0 and one_try.rejected > 0
    assert set(one_try.reasons) <= {
        "human:backend_error:http_500",
        "gpt:backend_error:http_500",
        "human:backend_error:malformed_json",
        "gpt:backend_error:malformed_json",
    }
    # with three attempts every sample reaches a seed the server answers: rejected ones are redone, ok ones cached
    retried = write_dialogues(warehouse, samples, backend, batch_size=9, max_attempts=3)
    assert retried.cached == one_try.accepted and retried.accepted == one_try.rejected and retried.rejected == 0
    rows = warehouse.read("dialogues").to_pylist()
    assert all(r["status"] == "ok" and r["human"] == GOOD_HUMAN and r["gpt"] == GOOD_GPT for r in rows)
    assert {r["attempts"] for r in rows} > {1}


def test_openai_api_key_from_environment(monkeypatch, faulty_server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("M2UGEN_OPENAI_API_KEY", raising=False)
    assert api_key_from_env() is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-generic")
    assert api_key_from_env() == "sk-generic"
    monkeypatch.setenv("M2UGEN_OPENAI_API_KEY", "sk-ours")
    assert api_key_from_env() == "sk-ours"
    backend = _faulty_backend(faulty_server)
    body = backend._body(_requests(1, seed=5)[0], backend.extras())
    assert body["seed"] == 5 and body["stop"] == ["<|im_end|>", "<|endoftext|>"]
    # vLLM's own fields: the reference's top_k, and special tokens kept for the validator
    assert body["top_k"] == 4 and body["skip_special_tokens"] is False
    assert _faulty_backend(faulty_server, vllm_extras=False).extras() == {}


def test_openai_server_that_refuses_vllm_extras_gets_one_retry_without(faulty_server, caplog):
    """A strict server (422 on unknown fields) answers the retry without them; they are then dropped for the
    run, with one warning; a server that accepts them keeps getting them."""
    _Faulty.hits.pop("strict", None)
    backend = _faulty_backend(f"{faulty_server}/strict/v1")
    with caplog.at_level("WARNING", logger="m2ugen_data.dialogues.openai_backend"):
        first = backend.complete(_requests(4))
        hits_first = _Faulty.hits["strict"]
        again = backend.complete(_requests(4))
    assert all(c.error is None and c.text for c in first + again)
    assert 4 < hits_first <= 8  # the concurrent first requests each refused once at most, then retried
    assert _Faulty.hits["strict"] - hits_first == 4  # afterwards: no extras, no refusals
    assert backend.extras() == {}
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    _Faulty.seen.clear()
    _faulty_backend(f"{faulty_server}/good/v1").complete(_requests(2))
    assert all(b.get("top_k") == 4 and b.get("skip_special_tokens") is False for b in _Faulty.seen)


# ---------------------------------------------------------------- vllm


def test_vllm_config_maps_to_engine_and_sampling_kwargs():  # keeps special tokens, like transformers
    cfg = VllmConfig(model="/models/mpt-7b-chat", tensor_parallel_size=2, dtype="bfloat16", max_model_len=4096)
    assert llm_kwargs(cfg) == {
        "model": "/models/mpt-7b-chat",
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.9,
        "trust_remote_code": False,
        "enforce_eager": False,
        "seed": 0,
    }
    assert "max_model_len" not in llm_kwargs(replace_cfg(cfg, max_model_len=None))
    params = GenerationParams(max_new_tokens=64, temperature=0.7, top_p=0.9, top_k=0)
    assert sampling_kwargs(params, 42) == {
        "n": 1,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": -1,
        "max_tokens": 64,
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "seed": 42,
        "skip_special_tokens": False,
    }
    with pytest.raises(ValidationError):
        VllmConfig(model="m", tensor_parallel_size=0)
    with pytest.raises(ValidationError):
        VllmConfig(model="m", tensor_paralel_size=2)  # a typo is an error, not silently ignored


def replace_cfg(cfg: VllmConfig, **kw) -> VllmConfig:
    return cfg.model_copy(update=kw)


def test_vllm_missing_is_a_clear_error(monkeypatch, tiny_lm):
    from m2ugen_data.preflight import PreflightError
    from m2ugen_data.preflight import vllm_support

    monkeypatch.setattr(vllm_support, "installed_vllm", lambda: None)
    with pytest.raises(PreflightError, match=r"^vllm: not installed .*pip install 'm2ugen\[gpu\]'"):
        VllmBackend(str(tiny_lm))
    monkeypatch.setattr(vllm_support, "installed_vllm", lambda: "0.34.0")
    monkeypatch.setitem(sys.modules, "vllm", None)  # the table said yes; the import itself still fails cleanly
    backend = VllmBackend(str(tiny_lm))
    with pytest.raises(MissingDependencyError, match="vLLM"):
        backend.complete(_requests(1))


def _has_cuda_and_vllm() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda_and_vllm(), reason="needs a CUDA GPU and vllm")
def test_vllm_generates_with_the_tiny_model(tmp_path, warehouse):
    model = build_tiny_chat_lm(tmp_path / "tiny", hidden_size=128, num_heads=2)
    backend = VllmBackend(
        str(model),
        params=GenerationParams(max_new_tokens=16),
        max_model_len=512,
        gpu_memory_utilization=0.3,
        enforce_eager=True,
    )
    out = backend.complete(_requests(8))
    assert len(out) == 8 and all(isinstance(c.text, str) and c.tokens > 0 for c in out)
    summary = write_dialogues(warehouse, _samples(4), backend, batch_size=4, max_attempts=2)
    assert summary.rejected == 4 and summary.tokens > 0
