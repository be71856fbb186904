"""m2ugen-eval: hand-checked metric values on small inputs, and the CLI end to end with tiny local models
standing in for the real embedders (read by the same loaders)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from entry_points import run_main
import soundfile as sf

from eval_models import write_tiny_ast, write_tiny_bert, write_tiny_clap
from m2ugen_model.eval import audio as A
from m2ugen_model.eval import text as T

SR = 16000


@pytest.fixture(scope="module")
def wordnet():
    """METEOR's WordNet (Debian's wordnet-base, installed by `make setup` as root)."""
    from m2ugen_model.eval.wordnet import WordNetMissing, load_wordnet

    try:
        return load_wordnet()
    except WordNetMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval_models")
    return {"bert": write_tiny_bert(d / "bert"), "clap": write_tiny_clap(d / "clap"), "ast": write_tiny_ast(d / "ast"),
            "ast_tagger": write_tiny_ast(d / "ast_tagger", num_labels=6)}


# ---------------------------------------------------------------------------------------------- text
def test_identical_texts_score_perfectly(models, wordnet):
    preds = ["the calm piano song with soft strings", "fast rock with loud drums"]
    assert T.bleu(preds, preds) == {"bleu": pytest.approx(100.0), "bleu4": pytest.approx(100.0)}
    assert T.rouge_l(preds, preds) == {"rougeL": pytest.approx(1.0), "rougeL_recall": pytest.approx(1.0)}
    # one chunk of n matched words: METEOR = 1 - 0.5 (1/n)^3
    assert T.meteor(preds, preds) == pytest.approx(np.mean([1 - 0.5 / 7**3, 1 - 0.5 / 5**3]))
    bs = T.bertscore(preds, preds, models["bert"])
    assert bs["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)


def test_hand_computed_bleu_rouge_meteor(wordnet):
    # BLEU-1: clipped unigram matches the:2 + cat:1 = 3 of 4, brevity penalty exp(1 - 6/4)
    assert T.bleu(["the cat the cat"], ["the cat sat on the mat"])["bleu"] == pytest.approx(100 * 0.75 * math.exp(-0.5))
    # ROUGE-L: LCS("the piano is calm", "the calm piano") = 2 -> P 2/4, R 2/3
    p, r = 2 / 4, 2 / 3
    assert T.rouge_l(["the piano is calm"], ["the calm piano"])["rougeL"] == pytest.approx(2 * p * r / (p + r))
    # METEOR: 4 of 5 words match ("banana" has no WordNet link to "car") in 2 chunks:
    # P = R = 0.8, fmean = 0.8, penalty 0.5 (2/4)^3
    assert T.meteor(["I drove my banana home"], ["I drove my car home"]) == pytest.approx(0.8 * (1 - 0.5 * 0.5**3))
    # several references: the sentence metrics take the best
    assert T.rouge_l(["a calm song"], [["loud drums", "a calm song"]])["rougeL"] == pytest.approx(1.0)


def test_bertscore_prefers_the_matching_reference(models):
    pred = ["the calm piano song"]
    same = T.bertscore(pred, ["the calm piano song"], models["bert"])["bertscore_f1"]
    other = T.bertscore(pred, ["loud rock drums"], models["bert"])["bertscore_f1"]
    assert same > other


# ---------------------------------------------------------------------------------------------- audio formulas
def test_frechet_distance_hand_computed_and_identical():
    # 1-D: mean 1, var 2 vs mean 3, var 8 -> (1-3)^2 + 2 + 8 - 2 sqrt(16) = 6
    assert A.frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])) == pytest.approx(6.0)
    x = np.random.default_rng(0).standard_normal((50, 4))
    assert A.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert A.frechet_distance(x, x + 1.0) == pytest.approx(4.0, abs=1e-6)  # a shift of 1 in 4 dims


def test_kl_hand_computed():
    got = A.kl_divergence(np.array([[0.5, 0.5], [0.2, 0.2]]), np.array([[0.25, 0.75], [0.7, 0.7]]))
    assert got[0] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), abs=1e-5)
    assert got[1] == pytest.approx(0.0, abs=1e-6)  # same distribution once normalised


# ---------------------------------------------------------------------------------------------- CLI runs
def _tone(path: Path, freq: float, seconds: float = 1.0, noise: float = 0.0, seed: int = 0) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    y = 0.3 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(seed).standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR)
    return path


def _cli(*args: str, monkeypatch=None, capsys=None) -> tuple[int, str]:
    """Run ``m2ugen-eval`` in this process (its entry point, error handling included); (exit code, stderr)."""
    from m2ugen_model.eval import cli as eval_cli

    return run_main(eval_cli.main, "m2ugen-eval", list(args), monkeypatch, capsys)


def test_generation_cli_scores_closer_sets_better_and_records_bad_files(models, tmp_path, monkeypatch, capsys):
    freqs = [220.0, 330.0, 440.0, 550.0]
    ref, same, far = tmp_path / "ref", tmp_path / "same", tmp_path / "far"
    for i, f in enumerate(freqs):
        _tone(ref / f"c{i}.wav", f)
        _tone(same / f"c{i}.flac", f)  # same music, another format: pairs by stem
        _tone(far / f"c{i}.wav", 3000.0 + 500 * i, noise=0.5, seed=i)
    (same / "broken.wav").write_bytes(b"not audio")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"c{i}", "prompt": f"a {f:.0f} hz tone"}) + "\n" for i, f in enumerate(freqs)))
    common = ["--reference", str(ref), "--prompts", str(prompts), "--fad-model", str(models["ast"]),
              "--kl-tagger", str(models["ast_tagger"]), "--clap-model", str(models["clap"])]
    out = tmp_path / "out_same"
    code, err = _cli("generation", "--generated", str(same), "--out", str(out), *common, monkeypatch=monkeypatch,
                     capsys=capsys)
    assert code == 0, err
    assert "| FAD |" in (out / "results.md").read_text()
    same_r = json.loads((out / "results.json").read_text())
    from m2ugen_model.eval.run import evaluate_generation

    far_r = evaluate_generation(far, ref, fad_model=models["ast"], tagger=str(models["ast_tagger"])).__dict__
    # 4 clips in 32 dimensions: singular covariances, so "0" is only up to sqrtm's error (flac is also 16-bit)
    assert same_r["metrics"]["fad"] < far_r["metrics"]["fad"] / 10
    assert same_r["metrics"]["kl"] == pytest.approx(0.0, abs=1e-3)
    assert far_r["metrics"]["kl"] > 10 * same_r["metrics"]["kl"]
    assert -1.0 <= same_r["metrics"]["clap"] <= 1.0 and same_r["counts"]["clap"] == 4
    assert [f["item"] for f in same_r["failures"]][:1] == [str(same / "broken.wav")]  # recorded, run went on
    assert same_r["models"]["fad_embedder"].startswith("audio-spectrogram-transformer")


def test_generation_with_clap_embeddings_and_musicnn_kl(models, tmp_path):
    pytest.importorskip("musicnn", reason="MusiCNN checkpoints not installed (pip install --no-deps musicnn==0.1.0)")
    ref = tmp_path / "ref"
    for i, f in enumerate([220.0, 440.0, 880.0]):
        _tone(ref / f"c{i}.wav", f, seconds=3.5)  # MusiCNN tags 3 s patches
    from m2ugen_model.eval.run import evaluate_generation

    r = evaluate_generation(ref, ref, fad_model=models["clap"], tagger="musicnn")
    assert r.metrics["fad"] == pytest.approx(0.0, abs=1e-4) and r.metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    assert r.models["kl_tagger"].startswith("musicnn") and r.models["fad_embedder"].startswith("clap")


def test_understanding_cli_joins_references_and_records_gaps(models, wordnet, tmp_path, monkeypatch, capsys):
    preds = tmp_path / "answers.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"id": "q1", "text": "the calm piano song"},
        {"id": "q2", "answer": "fast rock with loud drums"},
        {"id": "q3", "text": "no reference for me"},
        {"id": "q4", "error": "prompt longer than the context"},
    ]))
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps([{"id": "q1", "reference": "the calm piano song"},
                                {"id": "q2", "reference": ["fast rock with loud drums", "a rock song"]},
                                {"id": "q4", "reference": "x"}]))
    out = tmp_path / "out"
    code, err = _cli("understanding", "--predictions", str(preds), "--references", str(refs),
                     "--bertscore-model", str(models["bert"]), "--out", str(out), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["bleu"] == pytest.approx(100.0) and res["metrics"]["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    assert res["counts"]["bleu"] == 2
    assert {f["item"]: f["reason"] for f in res["failures"]} == {
        "q3": "no reference for this id", "q4": "prompt longer than the context"}
    assert "BLEU-4" in (out / "results.md").read_text()


def test_missing_model_dir_is_one_line(tmp_path, monkeypatch, capsys):
    _tone(tmp_path / "gen" / "a.wav", 440.0)
    code, err = _cli("generation", "--generated", str(tmp_path / "gen"), "--reference", str(tmp_path / "gen"),
                     "--fad-model", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), monkeypatch=monkeypatch,
                     capsys=capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "nope" in err and "config.json" in err
