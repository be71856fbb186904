"""Proof that the model learns, end to end on this machine: the tiny preset trained through stages 1 -> 2 -> 3
on demo-like shards, each stage measured on held-out data, then ``m2ugen-infer`` run on the final checkpoint.

Data (written by the pipeline's shard writer and this project's converters, real FLAC audio encoded on the fly
by the tiny MERT): MUCaps-style clips, three pitches whose captions name them; MUEdit-style dialogues asking for
music (answers end in [AUD]); Alpaca-layout and MusicQA-layout files converted by ``m2ugen-data convert``
(text answers). Held out: new renders of the clips (other phase, level and noise) and prompts whose wording was
never trained on. Measured: stage 1 caption cross-entropy, untrained vs trained; stage 2 projector MSE, before
vs after; stage 3 the share of held-out music requests answered with [AUD] and of held-out questions answered
without it (greedy decoding); the answers to a music question about the held-out clips (pitch word
accuracy and m2ugen-eval's BLEU/METEOR/ROUGE-L). Tiny-model numbers prove the harness, not the paper's results.

    .venv/bin/python bench/bench_learns.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from m2ugen_data.shards.tar_writer import Sample

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SR = 16000
PITCHES = {220.0: "a low calm tone", 440.0: "a bright middle tone", 880.0: "a high sharp tone"}
GEN_TRAIN = ("Change this music into {d}.", "Make this music {d}.")
GEN_HELDOUT = ("Please turn this music into {d}.", "Could you make a music that is {d}?", "Rewrite the music as {d}.")
QUESTIONS_TRAIN = [(f"What is {a} plus {b}?", f"{a + b}.") for a in range(1, 8) for b in range(1, 5)] + [
    (f"Name a {w}.", f"A {x}.") for w, x in (("fruit", "pear"), ("colour", "green"), ("city", "Paris"),
                                            ("tree", "oak"), ("planet", "Mars"), ("metal", "iron"))]
MAX_NEW = 48
QA_QUESTION = "What is the pitch of this tone?"
QUESTIONS_HELDOUT = ["What is 9 plus 12?", "Name a river.", "What is 15 plus 3?", "Name an animal.",
                     "What is 11 plus 11?", "Name a vegetable.", "What is 8 plus 20?", "Name a country."]


@dataclass
class Plan:
    steps: tuple[int, int, int] = (60, 40, 240)
    batch: int = 8
    n_clips: int = 24
    n_heldout: int = 12
    n_edit: int = 48
    lr: tuple[float, float, float] = (3e-2, 1e-2, 1e-2)
    generation: bool = True  # measure [AUD] rates and QA by greedy decoding (the slow part)


@dataclass
class Result:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # what, before, after, note
    numbers: dict[str, float] = field(default_factory=dict)
    infer: dict[str, object] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- data
def _tone(path: Path, freq: float, seed: int, seconds: float = 0.5) -> Path:
    """A tone of ``freq`` with a seed-dependent phase, level and noise: held-out clips are new renders."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    y = rng.uniform(0.2, 0.4) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    y = y + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR, format="FLAC" if path.suffix == ".flac" else "WAV")
    return path


def _clip_row(cid: str) -> dict:
    return {"clip_id": cid, "sha256": None, "sample_rate": SR, "duration_s": 0.5}


def mucaps_samples(media: Path, n: int, seed0: int, prefix: str) -> Iterator[Sample]:
    from m2ugen_data.shards.samples import mucaps_sample

    freqs = list(PITCHES)
    for i in range(n):
        cid, f = f"{prefix}{i:08d}_{i}", freqs[i % 3]  # prefix + 8 digits: an 11-char video id
        yield mucaps_sample(audio=_tone(media / f"{cid}.flac", f, seed0 + i), clip=_clip_row(cid), segment=None,
                            features={"analyser_version": "bench"},
                            caption={"text": f"This is {PITCHES[f]}.", "backend": "bench"})


def muedit_samples(media: Path, n: int) -> Iterator[Sample]:
    from m2ugen_data.shards.samples import muedit_sample

    freqs = list(PITCHES)
    for i in range(n):
        src, tgt = f"EDS{i:08d}_{i}", f"EDT{i:08d}_{i}"
        fs, ft = freqs[i % 3], freqs[(i + 1 + i // 3) % 3]
        human = GEN_TRAIN[i % len(GEN_TRAIN)].format(d=PITCHES[ft])
        yield (muedit_sample(
            pair={"src_id": src, "tgt_id": tgt, "miner_version": "bench"},
            dialogue={"status": "ok", "input_id": src, "output_id": tgt, "backend": "bench", "human": human,
                      "gpt": "Here is the music.", "input_caption": PITCHES[fs],
                      "output_caption": PITCHES[ft]},
            src_audio=_tone(media / f"{src}.flac", fs, 1000 + i), tgt_audio=_tone(media / f"{tgt}.flac", ft, 2000 + i),
            src_clip=_clip_row(src), tgt_clip=_clip_row(tgt)))


def write_text_sources(work: Path) -> tuple[Path, Path, Path]:
    """Alpaca- and MusicQA-layout files (the public layouts), converted by ``m2ugen-data convert``."""
    alpaca = work / "src" / "alpaca_data.json"
    alpaca.parent.mkdir(parents=True, exist_ok=True)
    alpaca.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in QUESTIONS_TRAIN], indent=1))
    audios = work / "src" / "audios"
    records = []
    for i, f in enumerate(list(PITCHES) * 4):
        name = f"{i:06d}.wav"
        _tone(audios / name, f, 3000 + i)
        records.append({"audio_name": name, "conversation": [
            {"from": "human", "value": QA_QUESTION},
            {"from": "gpt", "value": f"It is {PITCHES[f].split()[1]}."}]})
    musicqa = work / "src" / "FinetuneMusicQA.json"
    musicqa.write_text(json.dumps(records, indent=1))
    return alpaca, musicqa, audios


def build_data(work: Path, plan: Plan) -> dict[str, Path]:
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    from m2ugen_data.shards.build import write_dataset_shards
    from m2ugen_data.shards.tar_writer import ShardWriter
    from m2ugen_data.warehouse import open_warehouse

    wh = work / "warehouse"
    store = open_warehouse(wh)  # the pipeline's writer: shards + the manifest the trainer checks them against
    write_dataset_shards(store, "mucaps", mucaps_samples(work / "media", plan.n_clips, 0, "TRN"), max_samples=8)
    write_dataset_shards(store, "muedit", muedit_samples(work / "media", plan.n_edit), max_samples=8)
    held = work / "heldout"
    with ShardWriter(held / "mucaps", "mucaps", max_samples=8) as w:
        w.write_all(mucaps_samples(work / "media_heldout", plan.n_heldout, 500, "HLD"))
    alpaca, musicqa, audios = write_text_sources(work)
    runner = CliRunner()
    for args in (["convert", "alpaca", str(alpaca)], ["convert", "musicqa", str(musicqa), "--audio-dir", str(audios)]):
        res = runner.invoke(app, ["--warehouse", str(wh), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    return {"warehouse": wh, "heldout": held / "mucaps", "heldout_media": work / "media_heldout"}


# ---------------------------------------------------------------------------------------------- measuring
def _config(data: dict[str, Path], work: Path, stage: int, steps: int, plan: Plan, **kw):
    from m2ugen_model.train.config import TrainConfig

    extra = [f"alpaca={data['warehouse'] / 'shards' / 'alpaca'}", f"musicqa={data['warehouse'] / 'shards' / 'musicqa'}"]
    mixture = {"muedit": 2.0, "alpaca": 1.0, "musicqa": 1.0} if stage == 3 else {}  # music requests: half the batches
    return TrainConfig(shards=[str(data["warehouse"])], extra_shards=extra if stage == 3 else [], stage=stage,
                       mixture=mixture, max_steps=steps, batch_size=plan.batch, lr=plan.lr[stage - 1], warmup=5,
                       num_workers=0,
                       out=str(work / f"s{stage}"), progress=False, max_len=160, shuffle_buffer=64, bucket_batches=2,
                       audio_seconds=0.5, save_every=0, **kw)


@torch.no_grad()
def heldout_losses(bundle, cfg, heldout: Path, n: int) -> dict[str, float]:
    """CE and MSE over every held-out sample once (one batch of all of them, in stage ``cfg.stage``'s form)."""
    from m2ugen_model.train.data import ShardStream, Source
    from m2ugen_model.train.loop import Dist, model_inputs, stream_spec

    spec = stream_spec(cfg, bundle, Dist(), num_workers=0, resample=False, batch_size=n, pool_batches=1,
                       shuffle_buffer=1)
    urls = tuple(str(p) for p in sorted(heldout.glob("*.tar")))
    batch = next(iter(ShardStream([Source("mucaps", 1.0, urls)], spec, bundle.tokenizer)))
    was = bundle.model.training
    bundle.model.eval()
    out = bundle.model(**model_inputs(batch, bundle, torch.device("cpu")))
    bundle.model.train(was)
    return {"ce": float(out["ce_loss"]), "mse": float(out["mse_loss"]) if out.get("mse_loss") is not None else float("nan")}


def aud_rates(model, tok, media: Path, n: int) -> dict[str, float]:
    """[AUD0] emission (greedy) on held-out prompts: music edit requests about held-out clips, in the trained
    wording and in wording never trained on; questions without [AUD]: unseen text questions, and the music
    question about held-out clips."""
    from m2ugen_model.infer.inference import encode_inputs, generate_batch

    files = sorted(media.glob("*.flac"))[:n]
    feats = encode_inputs(model, [sf.read(f, dtype="float32")[0] for f in files], SR)
    descs = list(PITCHES.values())
    aud0 = model.cfg.vocab_size

    def rate(prompts: list[str], with_audio: bool) -> tuple[float, str]:
        with torch.no_grad():
            out = generate_batch(model, tok, prompts, feats if with_audio else None, max_new_tokens=MAX_NEW)
        return float(np.mean([aud0 in r.token_ids for r in out])), out[0].text

    edits_trained = [GEN_TRAIN[i % len(GEN_TRAIN)].format(d=descs[(i + 1) % 3]) for i in range(len(files))]
    edits_new = [GEN_HELDOUT[i % len(GEN_HELDOUT)].format(d=descs[(i + 2) % 3]) for i in range(len(files))]
    r = {}
    r["edit_trained_aud"], r["sample_edit"] = rate(edits_trained, True)
    r["edit_new_aud"], r["sample_edit_new"] = rate(edits_new, True)
    text_aud, r["sample_q"] = rate(QUESTIONS_HELDOUT, False)
    qa_aud, _ = rate([QA_QUESTION] * len(files), True)
    r["text_q_no_aud"], r["audio_q_no_aud"] = 1 - text_aud, 1 - qa_aud
    r["n_edit"], r["n_text_q"], r["n_audio_q"] = len(files), len(QUESTIONS_HELDOUT), len(files)
    return r


def qa_metrics(model, tok, media: Path, n: int) -> dict[str, float]:
    """Questions about held-out clips (MusicQA style), scored with m2ugen-eval's understanding metrics against
    the true answers, plus the share whose pitch word is right."""
    from m2ugen_model.eval.text import bleu, meteor, rouge_l
    from m2ugen_model.infer.inference import encode_inputs, generate_batch

    freqs = list(PITCHES)
    files = sorted(media.glob("*.flac"))[:n]
    words = [PITCHES[freqs[int(f.stem.split("_")[1]) % 3]].split()[1] for f in files]
    refs = [f"It is {w}." for w in words]
    feats = encode_inputs(model, [sf.read(f, dtype="float32")[0] for f in files], SR)
    with torch.no_grad():
        preds = [r.text for r in generate_batch(model, tok, [QA_QUESTION] * len(files), feats, max_new_tokens=MAX_NEW)]
    return {**bleu(preds, refs), "meteor": meteor(preds, refs), **rouge_l(preds, refs),
            "accuracy": float(np.mean([w in re.findall(r"[a-z]+", p.lower()) for w, p in zip(words, preds)])),
            "sample": preds[0], "n": len(files)}


# ---------------------------------------------------------------------------------------------- the run
def _load_checkpoint_weights(bundle, checkpoint: Path) -> None:
    from m2ugen_model.train.checkpointing import load_weights

    load_weights(bundle.model, checkpoint)


def _measured_stage(data: dict[str, Path], work: Path, plan: Plan, weights: Path, stage: int, steps: int,
                    init_from: Path | None = None):
    """Train one stage (from the previous stage's checkpoint) and measure its held-out losses before and after;
    "before" is the model the stage starts from, so each row shows what that stage alone did."""
    from m2ugen_model.train.model_bridge import from_preset
    from m2ugen_model.train.loop import Dist, train

    cfg = _config(data, work, stage, steps, plan, **({"init_from": str(init_from)} if init_from else {}))
    bundle = from_preset("tiny", str(weights), stage=stage)
    if init_from:
        _load_checkpoint_weights(bundle, init_from)
    before = heldout_losses(bundle, cfg, data["heldout"], plan.n_heldout)
    run = train(cfg, bundle, Dist())
    return run, before, heldout_losses(bundle, cfg, data["heldout"], plan.n_heldout)


def run(work: Path, plan: Plan, weights: Path | None = None, infer: bool = True) -> Result:
    from m2ugen_model.presets import write_tiny_weights
    from m2ugen_model.train.model_bridge import from_preset
    from m2ugen_model.train.loop import Dist, train

    torch.manual_seed(0)
    res = Result()
    t0 = time.perf_counter()
    data = build_data(work, plan)
    weights = weights or write_tiny_weights(work / "tiny")
    res.seconds["data"] = time.perf_counter() - t0
    s1, s2, s3 = plan.steps

    # stage 1: captions
    t0 = time.perf_counter()
    r1, before, after = _measured_stage(data, work, plan, weights, 1, s1)
    res.seconds["stage1"] = time.perf_counter() - t0
    res.numbers.update(ce_untrained=before["ce"], ce_stage1=after["ce"])
    res.rows.append(("stage 1: held-out caption CE (nats/token)", f"{before['ce']:.3f}", f"{after['ce']:.3f}",
                     f"{s1} steps; perplexity {np.exp(before['ce']):.0f} -> {np.exp(after['ce']):.0f}"))

    # stage 2: text-to-music alignment (projector MSE)
    t0 = time.perf_counter()
    r2, before2, after2 = _measured_stage(data, work, plan, weights, 2, s2, init_from=r1.checkpoint)
    res.seconds["stage2"] = time.perf_counter() - t0
    res.numbers.update(mse_before=before2["mse"], mse_stage2=after2["mse"])
    res.rows.append(("stage 2: held-out projector MSE", f"{before2['mse']:.4f}", f"{after2['mse']:.4f}",
                     f"{s2} steps from the stage-1 checkpoint"))

    # stage 3: instructions (MUEdit + converted Alpaca + MusicQA)
    t0 = time.perf_counter()
    cfg3 = _config(data, work, 3, s3, plan, init_from=str(r2.checkpoint))
    b3 = from_preset("tiny", str(weights), stage=3)
    _load_checkpoint_weights(b3, r2.checkpoint)  # stage 2's checkpoint carries the stage-1 adapters it started from
    if not plan.generation:
        r3 = train(cfg3, b3, Dist())
        res.numbers["ce_stage3_first"], res.numbers["ce_stage3_last"] = r3.ce[0], float(np.mean(r3.ce[-5:]))
        res.seconds["stage3"] = time.perf_counter() - t0
    else:
        r3 = _stage3_measured(b3, cfg3, data, plan, res, t0)
    res.infer["checkpoint"] = str(r3.checkpoint)
    if infer:
        res.infer.update(run_infer(weights, r3.checkpoint, work, next(iter(sorted(data["heldout_media"].glob("*.flac"))))))
    return res


def _stage3_measured(b3, cfg3, data, plan: Plan, res: Result, t0: float):
    """Stage 3 with [AUD] rates and music QA measured before and after."""
    from m2ugen_model.train.loop import Dist, train

    s3 = plan.steps[2]
    rates_before = aud_rates(b3.model, b3.tokenizer, data["heldout_media"], plan.n_heldout)
    qa_before = qa_metrics(b3.model, b3.tokenizer, data["heldout_media"], plan.n_heldout)
    r3 = train(cfg3, b3, Dist())
    rates = aud_rates(b3.model, b3.tokenizer, data["heldout_media"], plan.n_heldout)
    qa_after = qa_metrics(b3.model, b3.tokenizer, data["heldout_media"], plan.n_heldout)
    res.seconds["stage3"] = time.perf_counter() - t0
    res.numbers["ce_stage3_first"], res.numbers["ce_stage3_last"] = r3.ce[0], float(np.mean(r3.ce[-10:]))
    for key, what in (("edit_trained_aud", f"music edit requests, trained wording, held-out clips (of {rates['n_edit']}): [AUD] emitted"),
                      ("edit_new_aud", f"music edit requests, new wording, held-out clips (of {rates['n_edit']}): [AUD] emitted"),
                      ("text_q_no_aud", f"unseen text questions (of {rates['n_text_q']}): no [AUD]"),
                      ("audio_q_no_aud", f"music question about held-out clips (of {rates['n_audio_q']}): no [AUD]")):
        res.numbers[f"{key}_before"], res.numbers[key] = rates_before[key], rates[key]
        res.rows.append((f"stage 3: {what}", f"{rates_before[key]:.0%}", f"{rates[key]:.0%}", f"{s3} steps, greedy"))
    for k, label in (("accuracy", "pitch word right"), ("bleu", "BLEU-1"), ("bleu4", "BLEU-4"), ("meteor", "METEOR"),
                     ("rougeL", "ROUGE-L F")):
        res.rows.append((f"stage 3: held-out music QA ({qa_after['n']} clips), {label}", f"{qa_before[k]:.3f}",
                         f"{qa_after[k]:.3f}", "m2ugen-eval metrics" if k != "accuracy" else "greedy"))
        res.numbers[f"qa_{k}_before"], res.numbers[f"qa_{k}"] = qa_before[k], qa_after[k]
    res.infer["qa_sample_answer"] = qa_after["sample"]
    res.infer.update(sample_question=QUESTIONS_HELDOUT[0], sample_answer=rates["sample_q"],
                     sample_edit_request=GEN_TRAIN[0].format(d=list(PITCHES.values())[1]), sample_edit_reply=rates["sample_edit"],
                     sample_new_request=GEN_HELDOUT[0].format(d=list(PITCHES.values())[2]), sample_new_reply=rates["sample_edit_new"])
    return r3


def run_infer(weights: Path, checkpoint: Path, work: Path, song: Path) -> dict[str, object]:
    """``m2ugen-infer`` on the stage-3 checkpoint: music from an edit request, an answer about a song."""
    from typer.testing import CliRunner

    from m2ugen_model.infer.cli import app

    out = work / "infer"
    runner = CliRunner()
    common = ["--weights-dir", str(weights), "--checkpoint", str(checkpoint), "--max-new-tokens", str(MAX_NEW), "--seconds", "0.2"]
    compose = runner.invoke(app, [*common, "edit", str(song), GEN_TRAIN[0].format(d=PITCHES[880.0]), "--id", "t2m",
                                  "--out-dir", str(out)])
    answer = runner.invoke(app, [*common, "answer", str(song), "What is the pitch of this tone?", "--id", "qa",
                                 "--out-dir", str(out)])
    rec = json.loads((out / "t2m.json").read_text()) if (out / "t2m.json").exists() else {}
    qa = json.loads((out / "qa.json").read_text()) if (out / "qa.json").exists() else {}
    music = out / rec.get("music", {}).get("file", "t2m.wav")
    return {"compose_exit": compose.exit_code, "answer_exit": answer.exit_code, "music_file": str(music),
            "music_seconds": (sf.info(str(music)).duration if music.exists() else 0.0),
            "aud_emitted": rec.get("aud_emitted"), "aud_forced": rec.get("aud_forced"), "compose_text": rec.get("answer"), "answer_text": qa.get("answer"),
            "compose_output": compose.output[-500:], "answer_output": answer.output[-500:]}


def print_table(res: Result, plan: Plan) -> None:
    print(f"\nTiny preset, CPU (torch threads {torch.get_num_threads()}), steps {plan.steps}, batch {plan.batch}; "
          f"seconds: {', '.join(f'{k} {v:.0f}' for k, v in res.seconds.items())}")
    print(f"| {'measure':70s} | {'before':>8s} | {'after':>8s} | note")
    print(f"|{'-' * 72}|{'-' * 10}|{'-' * 10}|------")
    for what, b, a, note in res.rows:
        print(f"| {what:70s} | {b:>8s} | {a:>8s} | {note}")
    for k, v in res.infer.items():
        print(f"  {k}: {v}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the reduced run the test suite does")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # a shared 2-core box: more threads only contend (measured 5-10x slower at 2)
    plan = Plan(steps=(30, 20, 80)) if args.quick else Plan()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_learns_"))
    res = run(work, plan)
    print_table(res, plan)
    (work / "learns.json").write_text(json.dumps({"numbers": res.numbers, "infer": res.infer, "seconds": res.seconds},
                                                 indent=1, default=str))


if __name__ == "__main__":
    main()
