"""Near-duplicate finding on real sounds, fingerprint cost, and grouping at a million clips.

    .venv/bin/python bench/bench_dedup.py                  # everything (accuracy, cost, scale)
    .venv/bin/python bench/bench_dedup.py --part accuracy  # copies found / distinct pairs merged, dev and test
    .venv/bin/python bench/bench_dedup.py --part cost      # fingerprint seconds vs the whole analysis
    .venv/bin/python bench/bench_dedup.py --part scale --clips 1000000
    .venv/bin/python bench/bench_dedup.py --part accuracy --chromaprint   # the same pairs with Chromaprint

**Accuracy** (``--part accuracy``). Copies with known truth are made from every music clip of the real-sound
dev sets (``m2ugen_data.devset.copies``: re-encodes at several bitrates and codecs, gain, a cut, the clip
inside another recording, time-stretch by 3-4 %, half overlapping another recording, a re-master). Per split,
the universe is every dev-set clip of that split (music, GM renders, and the recordings set's effects,
ambience, crowds and speech) plus the copies; it is grouped exactly as the warehouse stage groups it
(candidate tokens -> ``match.compare`` -> connected components). Reported: the share of copies in their
original's group (per kind), and the share of *distinct* pairs in one group. Distinct: no copy relation, no
shared filler, and for the recordings set no shared source file (excerpts of one track that overlap, and
speech/crowd clips assembled from the same source sounds, share audio: they are neither). GM siblings (same
notes, other instruments: MUEdit's pairs) and tempo twins are distinct and also reported on their own. The
rules (``DupRules``) were set on the dev split; the test split is the figure to quote.

**Chromaprint** (``--chromaprint``): the same copy and distinct pairs scored with Chromaprint fingerprints
(ffmpeg's ``chromaprint`` muxer, raw) and the usual matcher (best offset by bit agreement), its threshold set
on dev for the same false-merge target: the measurement behind choosing landmarks.

**Cost** (``--part cost``): ``analyse_file``'s per-stage timings on dev-set clips; the fingerprint's share of
the whole analysis (target <= 10 %).

**Scale** (``--part scale``): grouping N clips with simulated candidate tokens (the token count per clip and
the share of common tokens taken from the real dev-set fingerprints; 1 % planted copies sharing half their
original's tokens), timed by phase: the candidate join, verification of every candidate pair
(each on a real copy/original fingerprint pair from the dev sets, so its cost is real), connected components.
Reading the tokens from the warehouse is not counted (I/O, reported separately when run on a warehouse).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.analysis import fingerprint as F
from m2ugen_data.dedup.candidates import candidate_pairs, token_arrays
from m2ugen_data.dedup.groups import group_rows
from m2ugen_data.dedup.links import Link, coverage
from m2ugen_data.dedup.match import DupRules, compare

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("dev", "test")


# --------------------------------------------------------------------------- the universe with truth


def _clip_rows(devsets: Path) -> list[dict[str, Any]]:
    """Every dev-set clip (both sets, every category) and every copy, with what decides distinctness."""
    rows = []
    for name in ("gm", "recordings"):
        for r in pq.read_table(devsets / name / "truth.parquet").to_pylist():
            rows.append({"id": r["clip_id"], "path": devsets / name / r["path"], "split": r["split"], "set": name,
                         "original": None, "filler": None, "kind": "original", "variant": "original",
                         "group": r.get("group_id"), "twin": r.get("twin_id"), "sources": r.get("sources") or [],
                         "offset": r.get("source_offset_s"), "construction": r.get("construction")})
    copies = pq.read_table(devsets / "copies" / "truth.parquet").to_pylist()
    for c in copies:
        rows.append({"id": c["copy_id"], "path": devsets / "copies" / c["path"], "split": c["split"],
                     "set": "copies", "original": c["original_id"], "filler": c["filler_id"]
                     if (c["filler_shared_s"] or 0) >= DupRules().min_overlap_s else None, "kind": c["kind"],
                     "variant": c["variant"], "group": None, "twin": None, "sources": [], "offset": None,
                     "construction": None})
    return rows


def _fingerprints(rows: list[dict[str, Any]], cache: Path, workers: int) -> dict[str, F.Fingerprint]:
    """Every clip's fingerprint, cached by path, size and mtime for this fingerprint version."""
    old: dict[str, dict[str, Any]] = {}
    if cache.is_file():
        for r in pq.read_table(cache).to_pylist():
            old[r["id"]] = r
    out, todo = {}, []
    for r in rows:
        st = r["path"].stat()
        key = f"{F.VERSION}|{st.st_size}|{st.st_mtime_ns}"
        hit = old.get(r["id"])
        if hit and hit["key"] == key:
            out[r["id"]] = _from_cache(hit)
        else:
            todo.append((r["id"], str(r["path"]), key))
    if todo:
        from m2ugen_data.lifecycle import process_pool

        with process_pool(workers) as pool:
            for (cid, _, key), fp in zip(todo, pool.map(F.fingerprint_file, [t[1] for t in todo], chunksize=8)):
                out[cid] = fp
                old[cid] = {"id": cid, "key": key, "status": fp.status, "landmarks": fp.pack_landmarks(),
                            "sketch": fp.sketch.tobytes(), "seconds": fp.seconds}
        pq.write_table(pa.Table.from_pylist(list(old.values())), cache)
    return out


def _from_cache(r: dict[str, Any]) -> F.Fingerprint:
    if r["status"] != "ok":
        return F.failed(r["status"], r["seconds"])
    return F.from_columns(r["landmarks"], r["sketch"], r["seconds"])


def _underlying(r: dict[str, Any]) -> set[str]:
    """The original clips whose audio a row holds (itself; a copy's original, and its filler when long enough)."""
    return {r["id"]} if r["original"] is None else {r["original"]} | ({r["filler"]} if r["filler"] else set())


def shares_audio(a: dict[str, Any], b: dict[str, Any], originals: dict[str, dict[str, Any]]) -> bool:
    """Truth: the two clips hold some of the same recorded audio (so they are not a distinct pair)."""
    for x in _underlying(a):
        for y in _underlying(b):
            if x == y:
                return True
            rx, ry = originals[x], originals[y]
            if rx["set"] == ry["set"] == "recordings" and set(rx["sources"]) & set(ry["sources"]):
                if rx["construction"] == ry["construction"] == "excerpt":
                    if abs((rx["offset"] or 0) - (ry["offset"] or 0)) < 10.0:
                        return True
                else:
                    return True  # sequences and loops assembled from shared source sounds
    return False


def sibling_link(a: dict[str, Any], b: dict[str, Any], originals: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """The pair of GM siblings (same notes, other instruments) through which two clips' audio is alike, if any."""
    for x in _underlying(a):
        for y in _underlying(b):
            gx, gy = originals[x]["group"], originals[y]["group"]
            if x != y and gx and gx == gy and originals[x]["set"] == "gm":
                return (min(x, y), max(x, y))
    return None


def group(ids: list[str], fps: dict[str, F.Fingerprint], rules: DupRules) -> tuple[dict[str, str], dict[str, float]]:
    """Group as the warehouse stage does: candidate tokens, verification, connected components."""
    t0 = time.perf_counter()
    a, b = candidate_pairs(*token_arrays([fps[c] for c in ids]), len(ids))
    t1 = time.perf_counter()
    links = []
    for i, j in zip(a.tolist(), b.tolist()):
        v = compare(fps[ids[i]], fps[ids[j]], rules)
        if v.duplicate:
            links.append(Link(ids[i], ids[j], "fingerprint", coverage=coverage(
                v.alignment.overlap_s, fps[ids[i]].seconds, fps[ids[j]].seconds)))
    t2 = time.perf_counter()
    rows = group_rows(ids, {c: fps[c].seconds for c in ids}, links, rules.version)
    return {r["clip_id"]: r["group_id"] for r in rows}, {"candidates": a.size, "links": len(links),
                                                         "candidate_s": t1 - t0, "verify_s": t2 - t1}


def accuracy(devsets: Path, workers: int, rules: DupRules, chromaprint: bool) -> None:
    from m2ugen_data.devset.copies import build_copies

    print(f"copies: {build_copies(devsets, workers=workers)}")
    rows = _clip_rows(devsets)
    fps = _fingerprints(rows, devsets / "copies" / "fingerprints.parquet", workers)
    print(f"\n### Near-duplicate finding on real sounds ({rules.version}, fingerprint {F.VERSION})\n")
    for split in SPLITS:
        sub = [r for r in rows if r["split"] == split]
        by_id = {r["id"]: r for r in sub}
        originals = {r["id"]: r for r in rows if r["original"] is None}
        related_to = lambda x, y: shares_audio(x, y, originals)  # noqa: E731
        ids = [r["id"] for r in sub]
        status = Counter(fps[c].status for c in ids)
        group_of, timing = group(ids, fps, rules)
        same = lambda x, y: x in group_of and group_of.get(x) == group_of.get(y)  # noqa: E731
        found: dict[str, list[bool]] = defaultdict(list)
        # a copy is found when it is in its original's group (a partial copy: or in the group of the other
        # recording it holds half of; grouping attaches it to one, never joins the two)
        hit = lambda r: same(r["id"], r["original"]) or bool(r["filler"] and same(r["id"], r["filler"]))  # noqa: E731
        for r in sub:
            if r["original"] is not None:
                found[r["kind"]].append(hit(r))
                found["all"].append(found[r["kind"]][-1])
        grouped = [c for c in ids if c in group_of]
        members = defaultdict(list)
        for c in grouped:
            members[group_of[c]].append(c)
        false_pairs, sib_false, twin_false = 0, 0, 0
        sib_originals: set[tuple[str, str]] = set()
        for g in members.values():
            for i in range(len(g)):
                for j in range(i + 1, len(g)):
                    a, b = by_id[g[i]], by_id[g[j]]
                    if not related_to(a, b):
                        false_pairs += 1
                        sib = sibling_link(a, b, originals)
                        sib_false += sib is not None
                        if sib is not None:
                            sib_originals.add(sib)
                        twin_false += bool(a["twin"] and (a["twin"] == b["id"] or b["twin"] == a["id"]))
        related = sum(related_to(by_id[ids[i]], by_id[ids[j]]) for i in range(len(ids))
                      for j in range(i + 1, len(ids)) if by_id[ids[i]]["original"] or by_id[ids[j]]["original"]
                      or by_id[ids[i]]["set"] == by_id[ids[j]]["set"] == "recordings")
        distinct = len(ids) * (len(ids) - 1) // 2 - related
        sib_pairs = sum(1 for i in range(len(ids)) for j in range(i + 1, len(ids))
                        if by_id[ids[i]]["group"] and by_id[ids[i]]["group"] == by_id[ids[j]]["group"])
        print(f"**{split}** ({len(ids)} clips: {sum(r['original'] is None for r in sub)} recordings and renders, "
              f"{len(found['all'])} copies; fingerprints {dict(status)}; {timing['candidates']} candidate pairs, "
              f"{timing['links']} links, {timing['candidate_s']:.2f} s + {timing['verify_s']:.2f} s)\n")
        print("| copies of kind | found | n |\n|---|---:|---:|")
        for kind in sorted(found):
            print(f"| {kind} | {100 * np.mean(found[kind]):.1f}% | {len(found[kind])} |")
        print(f"\n| distinct pairs merged | {false_pairs} of {distinct} = {100 * false_pairs / max(distinct, 1):.3f}% |")
        print(f"| of which through GM siblings (same notes, other instruments; copies included) | {sib_false} |")
        print(f"| GM sibling pairs grouped (of {sib_pairs}) | {len(sib_originals)} |")
        print(f"| of which tempo twins | {twin_false} |\n")
        by_variant = defaultdict(list)
        for r in sub:
            if r["original"] is not None:
                by_variant[r["variant"]].append(hit(r))
        print("| variant | found |\n|---|---:|")
        for v in sorted(by_variant):
            print(f"| {v} | {100 * np.mean(by_variant[v]):.1f}% ({len(by_variant[v])}) |")
        print()
        if chromaprint:
            chromaprint_scores(sub, related_to)


def tune(devsets: Path, workers: int) -> None:
    """Sweep the rule's thresholds on the dev split: copies found vs distinct pairs merged (pairwise, before
    grouping), among the candidate pairs (a copy that is never a candidate is missed whatever the rule)."""
    rows = [r for r in _clip_rows(devsets) if r["split"] == "dev"]
    fps = _fingerprints(rows, devsets / "copies" / "fingerprints.parquet", workers)
    by_id = {r["id"]: r for r in rows}
    originals = {r["id"]: r for r in _clip_rows(devsets) if r["original"] is None}
    ids = [r["id"] for r in rows]
    a, b = candidate_pairs(*token_arrays([fps[c] for c in ids]), len(ids))
    loose = DupRules(min_matches=0, min_frac=0.0, min_corr=-1.0, max_resid_db=1e9, min_overlap_s=0.0)
    stats = []
    for i, j in zip(a.tolist(), b.tolist()):
        x, y = by_id[ids[i]], by_id[ids[j]]
        copy_id = x["id"] if x["original"] == y["id"] else y["id"] if y["original"] == x["id"] else None
        label = "copy" if copy_id else "related" if shares_audio(x, y, originals) else "distinct"
        if label == "related":
            continue
        v = compare(fps[ids[i]], fps[ids[j]], loose)
        al = v.alignment
        ux, uy = originals[x["original"] or x["id"]], originals[y["original"] or y["id"]]
        stats.append((label, al.matches if al else 0, al.frac if al else 0.0, al.overlap_s if al else 0.0,
                      v.corr, v.resid_db, bool(ux["group"] and ux["group"] == uy["group"]), copy_id))
    n_copies = sum(1 for r in rows if r["original"])
    print(f"dev: {len(ids)} clips, {len(a)} candidate pairs, {n_copies} copies")
    print("| min_frac | min_corr | max_resid_db | copies found | distinct pairs merged: siblings | others |")
    print("|---|---|---|---:|---:|---:|")
    for mf in (0.1, 0.15, 0.2, 0.3):
        for mc in (0.7, 0.75, 0.8, 0.85, 0.9):
            for mr in (1.0, 1.5, 2.0):
                ok = lambda s: (s[1] >= 12 and s[2] >= mf and s[3] >= 3.0 and s[4] == s[4]  # noqa: E731
                                and s[4] >= mc and s[5] <= mr)
                tp = len({s[7] for s in stats if s[0] == "copy" and ok(s)})
                sib = sum(ok(s) for s in stats if s[0] == "distinct" and s[6])
                other = sum(ok(s) for s in stats if s[0] == "distinct" and not s[6])
                print(f"| {mf} | {mc} | {mr} | {tp}/{n_copies} = {100 * tp / n_copies:.1f}% | {sib} | {other} |")


# --------------------------------------------------------------------------- Chromaprint, for comparison


def _chroma(path: Path) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "chromaprint", "-fp_format",
                          "raw", "-"], capture_output=True, check=False)
    return np.frombuffer(out.stdout, dtype="<u4").astype(np.uint32)


def _chroma_sim(a: np.ndarray, b: np.ndarray, max_shift: int = 120, min_overlap: int = 20) -> float:
    """Best bit agreement over offsets (AcoustID's comparison without its index)."""
    best = 0.0
    for s in range(-max_shift, max_shift + 1):
        x, y = (a[s:], b) if s >= 0 else (a, b[-s:])
        n = min(x.size, y.size)
        if n < min_overlap:
            continue
        bits = np.unpackbits((x[:n] ^ y[:n]).view(np.uint8)).mean()
        best = max(best, 1.0 - float(bits))
    return best


def chromaprint_scores(sub: list[dict[str, Any]], related_to) -> None:
    by_id = {r["id"]: r for r in sub}
    cache = {r["id"]: _chroma(r["path"]) for r in sub}
    pos = [_chroma_sim(cache[r["id"]], cache[r["original"]]) for r in sub if r["original"]]
    origs = [r["id"] for r in sub if r["original"] is None][:120]
    neg = [_chroma_sim(cache[a], cache[b]) for i, a in enumerate(origs) for b in origs[i + 1:]
           if not related_to(by_id[a], by_id[b])]
    for thr in (0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        print(f"| chromaprint >= {thr} | copies found {100 * np.mean(np.array(pos) >= thr):.1f}% | distinct "
              f"merged {100 * np.mean(np.array(neg) >= thr):.3f}% ({len(neg)} pairs) |")
    print()


# --------------------------------------------------------------------------- cost


def cost(devsets: Path, n: int) -> None:
    from m2ugen_data.analysis.analyze import analyse_file, init_worker

    init_worker()
    clips = sorted((devsets / "gm" / "audio").glob("*.flac"))[:n]
    totals: Counter[str] = Counter()
    for c in clips:
        _, t = analyse_file("bench_clip_0", c)
        totals.update(t)
    share = totals["fingerprint"] / totals["total"]
    print(f"\n### Fingerprint cost ({len(clips)} GM clips of 10 s, one core, machine load {os.getloadavg()[0]:.1f})\n")
    print("| stage | s/clip | share |\n|---|---:|---:|")
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v / len(clips):.3f} | {100 * v / totals['total']:.1f}% |")
    print(f"\nfingerprint = {100 * share:.1f}% of the analysis (target <= 10%)")
    # a MUCaps-like whole-video file (210 s): analysed in windows, fingerprinted whole (read in chunks)
    import tempfile

    from m2ugen_data.audio_io import load_audio, write_flac

    y = np.concatenate([load_audio(c, sr=44100)[0] for c in sorted((devsets / "gm" / "audio").glob("*.flac"))[:21]])
    with tempfile.TemporaryDirectory() as tmp:
        long = write_flac(Path(tmp) / "long.flac", y, 44100)
        _, t = analyse_file("bench_long_0", long)
    print(f"210 s file: fingerprint {t['fingerprint']:.2f} s of {t['total']:.2f} s = "
          f"{100 * t['fingerprint'] / t['total']:.1f}% (analysis reads 6 windows, the fingerprint the whole file)")


# --------------------------------------------------------------------------- scale


def scale(n: int, devsets: Path, rules: DupRules, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    real = _real_pairs(devsets)
    per_clip = np.array([fp.tokens().size for fp, _ in real] + [fp.tokens().size for _, fp in real])
    common_share, common_pool = _common_tokens(real)
    counts = rng.choice(per_clip, size=n)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    tokens = rng.integers(0, 2**63, size=total, dtype=np.int64).astype(np.uint64)
    common = rng.random(total) < common_share  # tokens as common as the dev sets' shared ones
    tokens[common] = rng.choice(common_pool, size=int(common.sum()))
    n_copies = n // 100
    originals = rng.choice(n, size=n_copies, replace=False)
    copies = rng.choice(np.setdiff1d(np.arange(n), originals), size=n_copies, replace=False)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for o, c in zip(originals, copies):  # half the copy's tokens are its original's
        k = min(counts[o], counts[c]) // 2
        src = starts[o] + rng.choice(counts[o], size=k, replace=False)
        dst = starts[c] + np.arange(k)
        tokens[dst] = tokens[src]
    print(f"\n### Grouping {n:,} clips ({total:,} candidate tokens, {n_copies:,} planted copies), "
          f"2 cores, load {os.getloadavg()[0]:.1f}\n")
    t0 = time.perf_counter()
    a, b = candidate_pairs(tokens, owner, n)
    t1 = time.perf_counter()
    planted = set(zip(np.minimum(originals, copies).tolist(), np.maximum(originals, copies).tolist()))
    got = set(zip(a.tolist(), b.tolist()))
    links = []
    for k, (i, j) in enumerate(zip(a.tolist(), b.tolist())):  # each verified on a real copy pair: real cost
        fa, fb = real[k % len(real)]
        if compare(fa, fb, rules).duplicate:
            links.append(Link(str(i), str(j), "fingerprint"))
    t2 = time.perf_counter()
    ids = [str(i) for i in range(n)]
    rows = group_rows(ids, {}, links, rules.version)
    t3 = time.perf_counter()
    print("| phase | seconds |\n|---|---:|")
    print(f"| candidate join (pack, sort, runs, pair counts) | {t1 - t0:.1f} |")
    print(f"| verification of {a.size:,} candidate pairs | {t2 - t1:.1f} |")
    print(f"| connected components ({len(rows):,} clips in groups) | {t3 - t2:.1f} |")
    print(f"| **total** | **{t3 - t0:.1f}** |")
    print(f"\nplanted copies among the candidates: {len(planted & got)} of {len(planted)}; other candidates "
          f"{len(got - planted)}")


def _real_pairs(devsets: Path) -> list[tuple[F.Fingerprint, F.Fingerprint]]:
    rows = _clip_rows(devsets)
    fps = _fingerprints(rows, devsets / "copies" / "fingerprints.parquet", 2)
    return [(fps[r["id"]], fps[r["original"]]) for r in rows if r["original"] and fps[r["id"]].ok
            and fps[r["original"]].ok][:2000]


def _common_tokens(real: list[tuple[F.Fingerprint, F.Fingerprint]]) -> tuple[float, np.ndarray]:
    """The share of a clip's tokens that also occur in an unrelated clip, and those tokens (dev sets)."""
    seen: dict[int, set[int]] = defaultdict(set)
    originals = {id(b): b for _, b in real}
    for k, fp in enumerate(originals.values()):
        for t in fp.tokens().tolist():
            seen[t].add(k)
    shared = np.array([t for t, owners in seen.items() if len(owners) > 1], dtype=np.uint64)
    total = sum(len(o) for o in seen.values())
    in_shared = sum(len(seen[int(t)]) for t in shared)
    return in_shared / max(total, 1), shared if shared.size else np.array([0], np.uint64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets")
    ap.add_argument("--part", choices=("accuracy", "tune", "cost", "scale", "chromaprint", "all"), default="all")
    ap.add_argument("--clips", type=int, default=1_000_000, help="scale: clips to group")
    ap.add_argument("--cost-clips", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chromaprint", action="store_true")
    args = ap.parse_args()
    rules = DupRules()
    if args.part == "tune":
        tune(args.devsets, args.workers)
    if args.part == "chromaprint":  # the same test pairs scored with Chromaprint only
        rows = _clip_rows(args.devsets)
        originals = {r["id"]: r for r in rows if r["original"] is None}
        test = [r for r in rows if r["split"] == "test"]
        print("\n### Chromaprint on the test split (same copies and distinct pairs)\n")
        chromaprint_scores(test, lambda x, y: shares_audio(x, y, originals))
    if args.part in ("accuracy", "all"):
        accuracy(args.devsets, args.workers, rules, args.chromaprint)
    if args.part in ("cost", "all"):
        cost(args.devsets, args.cost_clips)
    if args.part in ("scale", "all"):
        scale(args.clips, args.devsets, rules)


if __name__ == "__main__":
    main()
