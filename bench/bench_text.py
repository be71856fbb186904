"""Text quality of the template dialogues: variety and rule-based defects, per corpus, dataset and side, for
the current template and the template at a git revision (``--before``, default ``main``), on the same samples.

    .venv/bin/python bench/bench_text.py                       # 3000 samples per corpus and dataset
    .venv/bin/python bench/bench_text.py --n 500 --examples 5  # quicker; print a few turns of each

Corpora (each gives measured music facts; the picture/clip side always comes from the demo warehouse's
measured pictures and clips, the only visual material there is offline):
- ``demo``: the demo's synthetic corpus, built once with ``python -m m2ugen_data.demo`` (``--demo-clips``
  per dataset) into ``<devsets>/cache/text-demo``: its analysed clips, mined pairs, visual rows, captions.
- ``gm`` / ``recordings``: the real-sound dev sets (``m2ugen-data devset build``; built here if missing,
  ``--gm-n``/``--rec-n`` clips), every clip analysed by the pipeline (the cache ``bench_hearing.py`` keeps),
  facts through ``facts_from_rows`` with the clip's AudioSet labels as its segment; recordings: music only.

A corpus holds tens of clips, not thousands, so samples recombine measured parts, drawn at random: MUImage/
MUVideo pair the music facts of clip i with picture (or clip) j; MUEdit takes every mined pair (demo) or
sibling pair (GM: the same piece re-orchestrated), then other ordered pairs of clips, keeping pairs with a
measured difference (``samples.edit_diff``). Every combination is used once before any is used again (under
another sample id, so it is phrased anew): the demo corpus has fewer combinations than ``--n``. Seeds are the
writer's (``sample_seed``).

Columns, per side (human = request, gpt = answer):
- distinct-1/2: distinct words (bigrams) over all words (bigrams), the mean over blocks of 100 turns (in
  random order: a page of the dataset); a corpus-wide ratio would mostly measure the corpus size.
- top skeleton: share of sentences with the most common skeleton (``text_quality.skeleton``: function
  words kept, other words one slot each run); the aim is at most 5 %.
- top opening: share of turns whose first three words are the most common first three words.
- number: share of turns with a digit in them (a request should carry none).
- defects: turns that break a ``text_quality`` rule (article / duplicated noun / dangling relative /
  repeated word); the aim is zero.
- accepted: share of turns the dialogue validator accepts (all its checks).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from at_revision import module_at

from m2ugen_data import defaults
from m2ugen_data.audioset.ontology import GENRE, INSTRUMENT, MOOD, load_ontology
from m2ugen_data.facts.measured import MusicFacts, facts_from_rows
from m2ugen_data.dialogues import template
from m2ugen_data.dialogues.samples import DATASETS, VISUAL_MODALITY, DialogueSample, edit_diff
from m2ugen_data.dialogues.text_quality import RULES, defects, sentences, skeleton, tokens
from m2ugen_data.dialogues.validate import validate_turn
from m2ugen_data.dialogues.writer import sample_seed

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "m2ugen_data/dialogues/template.py"
SIDES = ("human", "gpt")


@dataclass
class Corpus:
    name: str
    facts: dict[str, MusicFacts]
    segments: dict[str, dict[str, Any]]
    pairs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (src, tgt, pair row)
    captions: dict[str, str] = field(default_factory=dict)  # music captions, where the corpus has them


Picture = tuple[str, str, str | None, dict[str, Any] | None]  # (clip id, caption, caption backend, media row)


# ------------------------------------------------------------------------------------------- corpora


def demo_warehouse(path: Path, clips: int):
    from m2ugen_data.warehouse import open_warehouse

    if not (path / "manifests").is_dir():
        print(f"building the demo corpus ({clips} clips per dataset) in {path} ...", flush=True)
        cmd = [sys.executable, "-m", "m2ugen_data.demo", "--warehouse", str(path), "--clips", str(clips), "--no-report"]
        subprocess.run(cmd, check=True, cwd=REPO)
    return open_warehouse(path)


def _rows(table, key: str = "clip_id") -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in table.to_pylist()}


def demo_corpus(wh, namer) -> Corpus:
    features = _rows(wh.read("features", where="status = 'ok'"))
    segments = _rows(wh.read("segments"))
    facts = {c: facts_from_rows(c, features[c], segments.get(c), namer) for c in sorted(features)}
    rows = sorted(wh.read("pairs").to_pylist(), key=lambda p: (p["src_id"], p["tgt_id"]))
    pairs = [(p["src_id"], p["tgt_id"], p) for p in rows if p["src_id"] in facts and p["tgt_id"] in facts]
    caps = wh.read("captions", where="modality = 'audio' AND text IS NOT NULL").to_pylist()
    return Corpus("demo", facts, segments, pairs, {r["item_id"]: r["text"] for r in caps})


def demo_pictures(wh) -> dict[str, list[Picture]]:
    out: dict[str, list[Picture]] = {}
    for kind in ("image", "video"):
        media = _rows(wh.read("visual_media", where=f"kind = '{kind}' AND status = 'ok'"))
        caps = wh.read("captions", where=f"modality = '{kind}' AND text IS NOT NULL").to_pylist()
        rows = sorted(caps, key=lambda r: (r["item_id"], r["backend"]))  # the warehouse returns files in any order
        out[kind] = [(r["item_id"], r["text"], r["backend"], media.get(r["item_id"])) for r in rows]
    return out


def _label_segment(labels: Sequence[str], onto) -> dict[str, list[str]]:
    """A segment row from a clip's AudioSet labels, split by kind as the AudioSet selection does."""
    kinds = {"instruments": INSTRUMENT, "genres": GENRE, "moods": MOOD}
    return {kind: [m for m in labels if onto.is_under(m, root)] for kind, root in kinds.items()}


def devset_corpus(root: Path, name: str, n: int, onto, workers: int) -> Corpus:
    from hearing_sets import feature_rows


    from m2ugen_data.devset.truth import TRUTH_FILE, read_truth

    if not (root / name / TRUTH_FILE).is_file():
        from m2ugen_data.devset.gm import build_gm
        from m2ugen_data.devset.recordings import build_recordings

        print(f"building the {name} dev set ({n} clips) in {root / name} ...", flush=True)
        (build_gm if name == "gm" else build_recordings)(root / name, n=n, workers=workers)
    truth = read_truth(root / name).to_pylist()
    rows = feature_rows(root, name, truth, workers)
    facts, segments = {}, {}
    for t in truth:
        row = rows.get(t["clip_id"])
        if row is None or row.get("status") != "ok" or not t.get("is_music", True):
            continue
        segments[t["clip_id"]] = _label_segment(t.get("labels") or (), onto)
        facts[t["clip_id"]] = facts_from_rows(t["clip_id"], row, segments[t["clip_id"]], onto.name)
    pairs = []
    groups: dict[str, list[str]] = {}
    for t in truth:
        if t["clip_id"] in facts and t.get("group_id"):
            groups.setdefault(t["group_id"], []).append(t["clip_id"])
    for members in groups.values():
        pairs += [(a, b, {}) for a in members for b in members if a != b]
    return Corpus(name, facts, segments, pairs)


# ------------------------------------------------------------------------------------------- samples


def _draw(items: Sequence[Any], n: int, rng: random.Random) -> list[tuple[int, Any]]:
    """``n`` items in random order, each once before any twice; (round, item), the round numbering repeats."""
    out: list[tuple[int, Any]] = []
    for round_ in range(-(-n // max(len(items), 1))):
        out += [(round_, x) for x in rng.sample(list(items), len(items))]
    return out[:n]


def _sample_id(base: str, round_: int) -> str:
    return base if round_ == 0 else f"{base}#{round_}"


def visual_samples(
    corpus: Corpus, pictures: list[Picture], dataset: str, n: int, rng: random.Random
) -> list[DialogueSample]:
    combos = [(c, j) for c in sorted(corpus.facts) for j in range(len(pictures))]
    out = []
    for round_, (c, j) in _draw(combos, n, rng):
        pid, caption, backend, media = pictures[j]
        out.append(
            DialogueSample(dataset, _sample_id(f"{c}+{pid}", round_), pid, c, caption, corpus.captions.get(c, ""),
                           corpus.facts[c], input_backend=backend, media=media)
        )  # fmt: skip
    return out


def edit_samples(corpus: Corpus, n: int, rng: random.Random, namer) -> list[DialogueSample]:
    clips = sorted(corpus.facts)
    paired = {(a, b) for a, b, _ in corpus.pairs}
    others = [(a, b, {}) for a in clips for b in clips if a != b and (a, b) not in paired]
    usable = []
    for a, b, row in [*corpus.pairs, *rng.sample(others, min(len(others), 4 * n))]:
        segs = corpus.segments.get(a, {}), corpus.segments.get(b, {})
        d = edit_diff(row, corpus.facts[a], corpus.facts[b], *segs, namer)
        if d.describe() != "no measured change":
            usable.append((a, b, d))
        if len(usable) >= n:
            break
    mined = [u for u in usable if (u[0], u[1]) in paired]
    draws = [(0, u) for u in mined] + _draw([u for u in usable if (u[0], u[1]) not in paired], n - len(mined), rng)
    return [
        DialogueSample("muedit", _sample_id(f"{a}__{b}", round_), a, b, corpus.captions.get(a, ""),
                       corpus.captions.get(b, ""), corpus.facts[b], d)
        for round_, (a, b, d) in draws[:n]
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------- metrics


BLOCK = 100  # turns per distinct-n block


def _distinct(turns: Sequence[list[str]], k: int) -> float:
    """Distinct k-grams over all k-grams, the mean over consecutive blocks of BLOCK turns: a corpus-wide ratio
    only falls as the corpus grows, a block's ratio says how varied a page of the dataset reads."""
    ratios = []
    for start in range(0, len(turns), BLOCK):
        grams = [tuple(t[i : i + k]) for t in turns[start : start + BLOCK] for i in range(len(t) - k + 1)]
        if grams:
            ratios.append(len(set(grams)) / len(grams))
    return sum(ratios) / len(ratios) if ratios else 0.0


def measure(texts: Sequence[str], side: str, diffs: Sequence[Any]) -> dict[str, Any]:
    words = [[w.lower() for w in tokens(t) if w[0].isalnum()] for t in texts]
    skeletons = Counter(skeleton(s) for t in texts for s in sentences(t))
    openings = Counter(" ".join(w[:3]) for w in words)
    broken = Counter(r for t in texts for r in defects(t))
    accepted = sum(not validate_turn(side, t, d) for t, d in zip(texts, diffs, strict=True))
    top_skel, top_n = skeletons.most_common(1)[0]
    return {
        "turns": len(texts),
        "distinct-1": _distinct(words, 1),
        "distinct-2": _distinct(words, 2),
        "top skeleton": top_n / sum(skeletons.values()),
        "top opening": openings.most_common(1)[0][1] / len(texts),
        "number": sum(any(c.isdigit() for c in t) for t in texts) / len(texts),
        "defects": {rule: broken.get(rule, 0) for rule in RULES},
        "accepted": accepted / len(texts),
        "words/turn": sum(map(len, words)) / len(texts),
        "_skeleton": top_skel,
        "_skeletons": [(k, v / sum(skeletons.values())) for k, v in skeletons.most_common(3)],
    }


def turns(human: Callable, gpt: Callable, samples: Sequence[DialogueSample]) -> dict[str, list[str]]:
    seeds = [sample_seed(s, defaults.TEXT_SEED) for s in samples]
    return {
        "human": [human(s, seed) for s, seed in zip(samples, seeds, strict=True)],
        "gpt": [gpt(s, seed) for s, seed in zip(samples, seeds, strict=True)],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = ["corpus", "dataset", "template", "side", "turns", "distinct-1", "distinct-2", "top skeleton",
            "top opening", "number", "defects (art/dup/rel/rep)", "accepted", "words/turn"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        d = r["defects"]
        lines.append(
            f"| {r['corpus']} | {r['dataset']} | {r['template']} | {r['side']} | {r['turns']} | "
            f"{r['distinct-1']:.3f} | {r['distinct-2']:.3f} | {_pct(r['top skeleton'])} | {_pct(r['top opening'])} | "
            f"{_pct(r['number'])} | {sum(d.values())} ({'/'.join(str(v) for v in d.values())}) | "
            f"{_pct(r['accepted'])} | {r['words/turn']:.1f} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="samples per corpus and dataset")
    ap.add_argument("--before", default="main", help="git revision of the 'before' template ('' to skip)")
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets", help="dev-set root (and caches)")
    ap.add_argument("--corpora", nargs="+", default=["demo", "gm", "recordings"])
    ap.add_argument("--demo-clips", type=int, default=48)
    ap.add_argument("--gm-n", type=int, default=120)
    ap.add_argument("--rec-n", type=int, default=120)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="which samples are drawn")
    ap.add_argument("--examples", type=int, default=0, help="print this many turns per corpus and dataset")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    onto = load_ontology()
    wh = demo_warehouse(args.devsets / "cache" / "text-demo", args.demo_clips)
    pictures = demo_pictures(wh)
    templates: dict[str, tuple[Callable, Callable]] = {"now": (template.human_turn, template.gpt_turn)}
    with tempfile.TemporaryDirectory() as scratch:
        if args.before:
            old = module_at(args.before, TEMPLATE, Path(scratch))
            templates = {args.before: (old.human_turn, old.gpt_turn), **templates}
        rows: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        for name in args.corpora:
            corpus = (
                demo_corpus(wh, onto.name)
                if name == "demo"
                else devset_corpus(args.devsets, name, args.gm_n if name == "gm" else args.rec_n, onto, args.workers)
            )
            pics = {k: len(v) for k, v in pictures.items()}
            print(f"{name}: {len(corpus.facts)} clips with facts, {len(corpus.pairs)} mined/sibling pairs, "
                  f"pictures {pics}", flush=True)  # fmt: skip
            for dataset in DATASETS:
                rng = random.Random(f"{args.seed}/{name}/{dataset}")
                samples = (
                    edit_samples(corpus, args.n, rng, onto.name)
                    if dataset == "muedit"
                    else visual_samples(corpus, pictures[VISUAL_MODALITY[dataset]], dataset, args.n, rng)
                )
                diffs = {"human": [s.diff for s in samples], "gpt": [None] * len(samples)}
                for label, (human, gpt) in templates.items():
                    texts = turns(human, gpt, samples)
                    for side in SIDES:
                        m = measure(texts[side], side, diffs[side])
                        rows.append({"corpus": name, "dataset": dataset, "template": label, "side": side} | m)
                    if args.examples and label == "now":
                        for h, g in list(zip(texts["human"], texts["gpt"], strict=True))[: args.examples]:
                            print(f"  [{name}/{dataset}] H: {h}\n  [{name}/{dataset}] G: {g}")
        seconds = time.perf_counter() - t0
    print(f"\n{len(rows) // 2} turn sets in {seconds:.1f} s\n")
    print(markdown(rows))
    print("\nmost common skeletons (current template):")
    for r in rows:
        if r["template"] == "now":
            tops = "; ".join(f"{100 * share:.1f} % '{s}'" for s, share in r["_skeletons"])
            print(f"- {r['corpus']}/{r['dataset']}/{r['side']}: {tops}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
