"""Bad input injected into a flow run, the same way in the test process and in a subprocess run.

- a corrupt audio file: garbage bytes in one corpus FLAC (``corrupt_corpus_clip``), which the import records;
- a clip whose analysis fails: decoding raises for one clip (``inject``), which analysis records as failed;
- a rejected dialogue: the template backend answers the human turn of one sample with an empty line on every
  attempt (``inject``), which validation rejects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from m2ugen_data.synth import load_truth

REJECT_SAMPLE_OF = "first"  # the sample with the smallest id in each backend call is answered badly


def clean_singletons(corpus: Path) -> list[str]:
    """Clean clips outside sibling groups: breaking one of them costs no MUEdit pair."""
    rows = load_truth(corpus).to_pylist()
    return sorted(r["clip_id"] for r in rows if r["trouble"] == "none" and r["group_id"] is None)


def corrupt_corpus_clip(corpus: Path, clip_id: str) -> None:
    (corpus / "audio" / f"{clip_id}.flac").write_bytes(b"fLaC\x00 this is not audio " * 64)


def inject(mp: pytest.MonkeyPatch, analysis_fails: str) -> None:
    from m2ugen_data.analysis import analyze
    from m2ugen_data.dialogues.backend import Completion
    from m2ugen_data.dialogues.template import TemplateBackend

    real_load = analyze.load_audio

    def load_audio(path, *args, **kwargs):
        if Path(path).stem == analysis_fails:
            raise RuntimeError("injected analyser crash")
        return real_load(path, *args, **kwargs)

    real_complete = TemplateBackend.complete

    def complete(self, requests):
        out = real_complete(self, requests)
        target = min(r.sample.sample_id for r in requests)
        return [Completion(text="") if r.sample.sample_id == target and r.side == "human" else c for r, c in zip(requests, out)]

    mp.setattr(analyze, "load_audio", load_audio)
    mp.setattr(TemplateBackend, "complete", complete)
