"""The OpenAI backend against a local fake server that hallucinates: the claim checker rejects its turns,
names the contradicted claim, and the writer's retries keep the truthful answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.dialogues.openai_backend import OpenAIBackend
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff
from m2ugen_data.dialogues.writer import write_dialogues
from m2ugen_data.factcheck.heard import Heard

TRUE_HUMAN = "Add a flute and make it faster, around 120 BPM."
TRUE_GPT = "Here is a music that is upbeat and led by a flute, in A minor."
FALSE_GPT = "Here is a music that is led by a female vocalist and a piano, in C major."  # none of it was heard
FALSE_HUMAN = "Add a flute, slow it down and transpose it to C major."  # the pair got faster, in A minor


class _Hallucinating(BaseHTTPRequestHandler):
    """/always: every answer hallucinates; /byseed: odd seeds hallucinate, even seeds tell the truth."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        lying = self.path.startswith("/always") or body["seed"] % 2 == 1
        answer = "Here is a music that is" in body["prompt"].split("<|im_start|>user")[0]
        text = (FALSE_GPT if lying else TRUE_GPT) if answer else (FALSE_HUMAN if lying else TRUE_HUMAN)
        payload = json.dumps({"choices": [{"text": text, "index": 0}], "usage": {"completion_tokens": 12}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hallucinating)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _samples(n: int) -> list[DialogueSample]:
    tgt = MusicFacts("t", tempo_bpm=120.0, tempo_conf=0.9, key="A minor", key_conf=0.9, instruments=("flute",),
                     vocals="instrumental")
    src = MusicFacts("s", tempo_bpm=90.0, tempo_conf=0.9, key="A minor", key_conf=0.9, instruments=(), vocals="instrumental")
    absent = {w: 0.001 for w in ("piano", "guitar", "drums", "synth", "strings", "violin", "cello", "harpsichord", "sitar")}
    diff = EditDiff(added_instruments=("flute",), tempo_src=90.0, tempo_tgt=120.0, key_src="A minor", key_tgt="A minor")
    return [
        DialogueSample("muedit", f"s{i:02d}__t{i:02d}", f"s{i:02d}", f"t{i:02d}", "a slow piece", "a flute piece", tgt, diff,
                       target_heard=Heard(tgt, absent | {"flute": 0.4}), source_heard=Heard(src, absent | {"flute": 0.001}))
        for i in range(n)
    ]


def _backend(url: str) -> OpenAIBackend:
    return OpenAIBackend("m", base_url=url, max_retries=0, timeout_s=5, concurrency=4)


def test_hallucinated_turns_are_rejected_with_the_claim_named(server, warehouse):
    s = write_dialogues(warehouse, _samples(3), _backend(f"{server}/always/v1"), batch_size=3, max_attempts=2)
    assert (s.accepted, s.rejected) == (0, 3)
    rows = warehouse.read("dialogues").to_pylist()
    for r in rows:
        assert r["status"] == "rejected" and r["attempts"] == 2
        assert r["reasons"] == [
            "human:contradicted:slower", "human:contradicted:transpose to C major",
            "gpt:contradicted:female voice", "gpt:contradicted:piano", "gpt:contradicted:key C major",
        ]
        report = json.loads(r["factcheck"])
        gpt = {c["claim"]: (c["verdict"], c["evidence"]["source"]) for c in report["gpt"]["claims"]}
        assert gpt == {"female voice": ("contradicted", "features.vocals"), "piano": ("contradicted", "features.tags"),
                       "key C major": ("contradicted", "features.key")}
        assert r["consistency"] == pytest.approx(1 / 6)  # add flute supported; five claims contradicted
    assert s.reasons["gpt:contradicted:female voice"] == 3


def test_retries_keep_the_truthful_answers(server, warehouse):
    s = write_dialogues(warehouse, _samples(6), _backend(f"{server}/byseed/v1"), batch_size=6, max_attempts=2)
    assert (s.accepted, s.rejected) == (6, 0) and s.attempts[2] > 0  # some first answers lied, the retry did not
    for r in warehouse.read("dialogues").to_pylist():
        assert r["status"] == "ok" and (r["human"], r["gpt"]) == (TRUE_HUMAN, TRUE_GPT) and r["consistency"] == 1.0
