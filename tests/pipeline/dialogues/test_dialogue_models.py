"""The dialogue LLMs in their published layouts, loaded through ``m2ugen-data dialogue``, and the preflight
that refuses a bad model directory in one line before anything loads.

Fixtures (``m2ugen_data.testing.dialogue_layouts``) are tiny random models written the way MPT-7B-chat,
Llama-3.1-8B-Instruct and Qwen2.5-7B-Instruct are published: their text is noise, so every dialogue is
rejected by validation; what these tests prove is that the real files load, by the route the product takes
(MPT through transformers' own class, never the repository's code), with the prompt format the model was
tuned on.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from hf_cache import hf_cache, install_in_hf_cache  # noqa: F401  (hf_cache: a fixture)
from synth_text import fill_warehouse, musical_truth, truth_pairs
from typer.testing import CliRunner

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.captions.grounded import GroundedCaptioner
from m2ugen_data.captions.inputs import caption_items
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.cli import app
from m2ugen_data.dialogues.backend import GenerationParams
from m2ugen_data.testing.dialogue_layouts import write_llama31_instruct, write_mpt_7b_chat, write_qwen25_instruct
from m2ugen_data.dialogues.prompts import SYSTEM_PROMPTS
from m2ugen_data.dialogues.transformers_backend import TransformersBackend
from m2ugen_data.preflight import PreflightError, vllm_support
from m2ugen_data.preflight.expect import check_dialogue_llm
from m2ugen_data.preflight.vllm_support import serves

FAST = ["--max-new-tokens", "6", "--max-attempts", "1", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models run fastest on one thread


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published_llms")
    return {
        "mpt": write_mpt_7b_chat(root / "mpt-7b-chat"),
        "llama": write_llama31_instruct(root / "Llama-3.1-8B-Instruct"),
        "qwen": write_qwen25_instruct(root / "Qwen2.5-7B-Instruct"),
    }


@pytest.fixture
def muedit_wh(synth_corpus, warehouse):
    truth = musical_truth(synth_corpus)
    fill_warehouse(warehouse, truth)
    write_captions(warehouse, GroundedCaptioner(), caption_items(warehouse, load_ontology().name))
    warehouse.write_batch("pairs", truth_pairs(truth)[:4], "truth")  # four samples: loading is what is tested
    return warehouse


def _dialogue(wh, *args: str):
    return CliRunner().invoke(app, ["-w", str(wh.root), "dialogue", "--dataset", "muedit", *args])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- loading through the CLI


@pytest.mark.parametrize("name", ["mpt", "llama", "qwen"])
def test_published_layouts_write_dialogues_through_the_cli(published, muedit_wh, name):
    res = _dialogue(muedit_wh, "--backend", "transformers", "--model", str(published[name]), *FAST)
    assert res.exit_code == 0, (res.output, res.exception)
    rows = muedit_wh.read("dialogues").to_pylist()
    assert rows and all(r["backend"] == "transformers" and r["model"] == str(published[name]) for r in rows)
    assert all(r["status"] == "rejected" for r in rows)  # random weights: noise, which validation catches


def test_mpt_loads_by_transformers_own_class_without_the_repository_code(published):
    """The fixture's configuration_mpt.py / modeling_mpt.py raise when executed: loading would fail."""
    backend = TransformersBackend(str(published["mpt"]), device="cpu")
    _, lm = backend._load()
    assert type(lm).__name__ == "MptForCausalLM" and lm.dtype == torch.bfloat16  # config's torch_dtype
    assert backend.prompt_format.name == "chatml"  # the released ChatML prompts
    assert backend.params.stop == ("<|im_end|>", "<|endoftext|>")


def test_hub_code_only_model_is_refused_in_one_line(published, tmp_path):
    """A model transformers has no class for, published with an auto_map to its own code (MERT's case)."""
    d = _copy(published["mpt"], tmp_path / "hubcode")
    config = json.loads((d / "config.json").read_text()) | {"model_type": "mpt_custom"}
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError) as e:
        TransformersBackend(str(d))
    msg = str(e.value)
    assert "\n" not in msg and "published as hub code (modeling_mpt.MPTForCausalLM)" in msg
    assert str(d / "config.json") in msg and "--trust-remote-code" in msg


@pytest.mark.parametrize("name, marker", [("llama", "<|start_header_id|>system<|end_header_id|>"),
                                          ("qwen", "<|im_start|>system\n")])
def test_chat_presets_are_prompted_by_their_own_template(published, name, marker):
    backend = TransformersBackend(str(published[name]), device="cpu", params=GenerationParams(max_new_tokens=4))
    fmt = backend.prompt_format
    assert fmt.name.startswith("chat-template:")
    prompt = fmt.render(SYSTEM_PROMPTS[("muedit", "gpt")], "Source music: a\nNew music: b")
    assert marker in prompt and SYSTEM_PROMPTS[("muedit", "gpt")] in prompt
    tok = backend._tok
    ids = tok(prompt)["input_ids"]
    if tok.bos_token:  # Llama: the template's BOS was cut, the tokenizer adds exactly one
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    if name == "llama":
        assert "Cutting Knowledge Date: December 2023" in prompt  # what the published template adds
        assert backend.params.stop[:1] == ("<|eot_id|>",) and "<|eom_id|>" in backend.params.stop
    else:
        assert backend.params.stop == ("<|im_end|>", "<|endoftext|>")


def test_prompt_format_can_be_forced(published, muedit_wh):
    chatml = TransformersBackend(str(published["qwen"]), device="cpu", prompt_format_name="chatml")
    assert chatml.prompt_format.name == "chatml"
    res = _dialogue(muedit_wh, "--backend", "transformers", "--model", str(published["mpt"]),
                    "--prompt-format", "chat-template", *FAST)
    assert res.exit_code != 0 and "has no chat_template" in str(res.exception)


# ---------------------------------------------------------------- presets


def test_preset_name_loads_the_cached_snapshot(published, muedit_wh, hf_cache):
    snapshot = install_in_hf_cache(hf_cache, "Qwen/Qwen2.5-7B-Instruct", published["qwen"])
    res = _dialogue(muedit_wh, "--backend", "transformers", "--model", "qwen2.5-7b-instruct", *FAST)
    assert res.exit_code == 0, (res.output, res.exception)
    assert {r["model"] for r in muedit_wh.read("dialogues").to_pylist()} == {str(snapshot)}
    res = _dialogue(muedit_wh, "--backend", "transformers", "--model", "llama-3.1-8b-instruct", *FAST)
    assert "hf download meta-llama/Llama-3.1-8B-Instruct" in str(res.exception)


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        payload = json.dumps({"choices": [{"text": "Here is a music that is calm.", "index": 0}],
                              "usage": {"completion_tokens": 7}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_served_preset_is_prompted_by_its_cached_tokenizer_template(published, muedit_wh, hf_cache):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        res = _dialogue(muedit_wh, "--backend", "openai", "--model", "llama-3.1-8b-instruct", "--base-url", url)
        assert res.exit_code != 0 and "--tokenizer DIR" in str(res.exception)  # no template to prompt with
        install_in_hf_cache(hf_cache, "meta-llama/Llama-3.1-8B-Instruct", published["llama"])
        res = _dialogue(muedit_wh, "--backend", "openai", "--model", "llama-3.1-8b-instruct", "--base-url", url,
                        "--max-attempts", "1")
        assert res.exit_code == 0, (res.output, res.exception)
    finally:
        server.shutdown()
        server.server_close()
    body = _Recorder.bodies[0]
    assert body["model"] == "llama-3.1-8b-instruct"  # the name the server was started with
    assert body["prompt"].startswith("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date")
    assert body["stop"][0] == "<|eot_id|>" and body["top_k"] == 4 and body["skip_special_tokens"] is False


# ---------------------------------------------------------------- vLLM: which release serves what


def test_vllm_architecture_table():
    assert serves("MPTForCausalLM", "0.28.0") is True
    assert serves("MPTForCausalLM", "0.29.0") is False and serves("MptForCausalLM", "0.34.0") is False
    assert serves("Qwen2ForCausalLM", "0.2.7") is False and serves("Qwen2ForCausalLM", "0.34.0") is True
    assert serves("LlamaForCausalLM", "0.34.0") is True
    assert serves("SomeNewForCausalLM", "0.34.0") is None  # not in the table: vLLM decides


def test_vllm_that_cannot_serve_mpt_says_the_two_routes_in_one_line(published, muedit_wh, monkeypatch):
    monkeypatch.setattr(vllm_support, "installed_vllm", lambda: "0.34.0")
    res = _dialogue(muedit_wh, "--backend", "vllm", "--model", str(published["mpt"]))
    assert res.exit_code != 0 and isinstance(res.exception, PreflightError)
    msg = str(res.exception)
    assert "\n" not in msg
    assert "vLLM 0.34.0 cannot serve MPTForCausalLM (vLLM served it up to 0.28.0)" in msg
    assert str(published["mpt"] / "config.json") in msg
    assert "vllm==0.28.0" in msg and "docker/vllm-mpt" in msg and "--backend openai" in msg
    assert "qwen2.5-7b-instruct" in msg
    assert muedit_wh.read("dialogues").num_rows == 0  # refused before any sample was asked
    finding = vllm_support.vllm_support(published["mpt"], version="0.34.0")
    assert finding is not None and (finding.what, finding.path) == ("dialogue LLM", str(published["mpt"] / "config.json"))
    assert vllm_support.vllm_support(published["mpt"], version="0.28.0") is None
    assert vllm_support.vllm_support(published["qwen"], version="0.34.0") is None


# ---------------------------------------------------------------- bad input, one line each


def _one_line(findings) -> str:
    assert findings, "the defect was not found"
    line = findings[0].line()
    assert "\n" not in line
    return line


def test_wrong_architecture_is_refused(published, tmp_path):
    d = tmp_path / "blip"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["BlipForConditionalGeneration"], "model_type": "blip"}))
    line = _one_line(check_dialogue_llm(d, "transformers"))
    assert "BlipForConditionalGeneration is not a causal language model" in line and str(d / "config.json") in line


def test_missing_tokenizer_is_refused(published, tmp_path):
    d = _copy(published["qwen"], tmp_path / "qwen")
    for f in ("tokenizer.json", "vocab.json", "merges.txt"):
        (d / f).unlink()
    line = _one_line(check_dialogue_llm(d, "transformers"))
    assert "no tokenizer" in line and str(d) in line


def test_truncated_safetensors_shard_is_refused(published, tmp_path):
    d = _copy(published["llama"], tmp_path / "llama")
    shard = sorted(d.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])
    line = _one_line(check_dialogue_llm(d, "transformers"))
    assert "truncated safetensors" in line and str(shard) in line and "copy this file again" in line
    with pytest.raises(PreflightError, match="truncated safetensors"):
        TransformersBackend(str(d))


def test_truncated_or_missing_bin_shard_is_refused(published, tmp_path):
    d = _copy(published["mpt"], tmp_path / "mpt")
    shard = d / "pytorch_model-00002-of-00002.bin"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert "truncated torch file" in _one_line(check_dialogue_llm(d, "transformers"))
    shard.unlink()
    line = _one_line(check_dialogue_llm(d, "transformers"))
    assert "shard listed in pytorch_model.bin.index.json is missing" in line and str(shard) in line


def test_missing_directory_is_refused(tmp_path, muedit_wh):
    res = _dialogue(muedit_wh, "--backend", "transformers", "--model", str(tmp_path / "nope"))
    assert res.exit_code != 0 and "no model directory" in str(res.exception)
