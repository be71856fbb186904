"""The Prefect flows end to end on the synthetic corpus: shards, counts, bad input, rerun and resume after a kill.

One reference run of ``build-muedit`` (in this process, on a 14-clip corpus with one corrupt file, one
analysis crash and one rejected dialogue injected) is shared by the tests; the resume test repeats it in a
subprocess that it kills with SIGKILL in the middle of the analysis, and compares the two warehouses.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
import soundfile as sf
import webdataset as wds
from flow_faults import clean_singletons, corrupt_corpus_clip, inject
from flow_script import run_muedit
from warehouse_content import file_stats, latest_content

from m2ugen_data.shards import check_member_name, parse_sample_json, verify_shards
from m2ugen_data.synth import render_corpus
from m2ugen_data.warehouse import Warehouse, open_warehouse
from paths import SUPPORT

pytestmark = pytest.mark.slow

N, SEED = 14, 11
SCRIPT = SUPPORT / "flow_script.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """14 clips (3 sibling groups, 2 troubled clips); one clean clip's FLAC is replaced by garbage and
    another clean clip will crash the analyser."""
    from flow_script import SIBLINGS, TROUBLE

    out = tmp_path_factory.mktemp("flow_corpus")
    render_corpus(n=N, seed=SEED, out_dir=out, sibling_fraction=SIBLINGS, trouble_fraction=TROUBLE)
    corrupt, crash = clean_singletons(out)[:2]
    corrupt_corpus_clip(out, corrupt)
    return {"dir": out, "corrupt": corrupt, "crash": crash}


@pytest.fixture(scope="module")
def reference(flow_api, corpus, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wh_ref") / "wh"
    with pytest.MonkeyPatch.context() as mp:
        inject(mp, corpus["crash"])
        summary = run_muedit(str(root), str(corpus["dir"]), N, SEED)
    return {"wh": open_warehouse(root), "summary": summary}


def _shard_samples(wh: Warehouse, dataset: str) -> list[dict]:
    paths = [str(wh.abspath(p)) for p in wh.read("shards", where=f"dataset = '{dataset}'").column("path").to_pylist()]
    ds = wds.WebDataset(sorted(paths), shardshuffle=False, empty_check=False, select_files=check_member_name)
    return list(ds)


def test_muedit_shards_open_with_webdataset_and_match_duckdb(reference):
    wh = reference["wh"]
    samples = _shard_samples(wh, "muedit")
    con = wh.connect()
    accepted = con.execute(
        "SELECT input_id || '__' || output_id FROM dialogues_latest WHERE dataset = 'muedit' AND status = 'ok' ORDER BY 1"
    ).fetchall()
    assert len(samples) >= 2
    assert [s["__key__"] for s in samples] == [k for (k,) in accepted]
    assert sum(con.execute("SELECT sum(samples) FROM shards_latest WHERE dataset = 'muedit'").fetchone()) == len(samples)
    for s in samples:
        assert {k for k in s if not k.startswith("__")} == {"input.flac", "output.flac", "json"}
        for member in ("input.flac", "output.flac"):
            y, sr = sf.read(io.BytesIO(s[member]))
            assert sr > 0 and len(y) > sr  # a real, decodable clip of more than a second
        sample = parse_sample_json(s["json"], "muedit")
        src, tgt = s["__key__"].split("__")
        assert sample.conversation[0].input_modality == "audio" and sample.conversation[1].output_modality == "audio"
        assert src in sample.input_file and tgt in sample.output_file
    assert verify_shards(wh, "muedit").ok
    counts = reference["summary"]["counts"]
    assert counts["shard_samples"] == len(samples) == counts["dialogues_accepted"]
    # the run leaves a catalog any DuckDB client can open, and it agrees with the shards
    catalog = duckdb.connect(str(wh.root / "catalog.duckdb"), read_only=True)
    assert catalog.execute("SELECT sum(samples) FROM shards_latest WHERE dataset = 'muedit'").fetchone()[0] == len(samples)


def test_bad_input_is_recorded_and_the_rest_completes(reference, corpus):
    wh, summary = reference["wh"], reference["summary"]
    clips = {r["clip_id"]: r for r in wh.read("clips").to_pylist()}
    assert clips[corpus["corrupt"]]["status"] == "failed" and clips[corpus["corrupt"]]["error_class"] == "corrupt"
    features = {r["clip_id"]: r for r in wh.read("features").to_pylist()}
    assert corpus["corrupt"] not in features
    crashed = features[corpus["crash"]]
    assert crashed["status"] == "failed" and crashed["reason"].startswith("analysis_error: RuntimeError")
    rejected = wh.read("dialogues", where="status = 'rejected'").to_pylist()
    injected = [r for r in rejected if r["reasons"] == ["human:empty"]]
    assert len(injected) == 1
    # any other rejection is the honest one: a pair whose measured facts do not differ gets no edit request
    assert all(r["reasons"] == ["human:no_measured_difference"] for r in rejected if r not in injected)
    keys = {s["__key__"] for s in _shard_samples(wh, "muedit")}
    assert not keys & {r["sample_id"] for r in rejected}
    # everything else went through: every clean clip but the two broken ones was analysed ok
    assert summary["counts"]["analysed_ok"] == N - 2 - 2  # 14 clips - 2 troubled (rejected) - corrupt - crashed
    assert summary["failures"]["download:corrupt"] == 1
    assert summary["failures"]["analysis:failed:analysis_error"] == 1
    assert summary["failures"]["dialogue:human:empty"] == 1


def test_summary_artifact_is_published(reference, flow_api):
    import httpx

    keys = ["build-muedit-summary", "build-muedit-report", "build-muedit-card"]
    body = {"artifacts": {"key": {"any_": keys}}, "sort": "CREATED_DESC", "limit": 10, "offset": 0}
    resp = httpx.post(f"{flow_api['url']}/artifacts/filter", json=body, timeout=10)
    resp.raise_for_status()
    arts = resp.json()
    assert {a["key"] for a in arts} >= set(keys)
    table = next(a for a in arts if a["key"] == "build-muedit-summary")
    assert "dialogues_rejected" in str(table["data"]) and "analysis:failed:analysis_error" in str(table["data"])
    # the dataset card, rewritten by the flow and linked from its artifact
    card = next(a for a in arts if a["key"] == "build-muedit-card")
    index = reference["wh"].root / "report" / "index.html"
    assert index.as_uri() in card["data"] and "analysis_error" in (index.parent / "muedit" / "index.html").read_text()


def test_resume_after_sigkill_matches_an_uninterrupted_run(reference, corpus, flow_api, tmp_path):
    root = tmp_path / "wh"
    cmd = [sys.executable, str(SCRIPT), str(root), str(corpus["dir"]), str(N), str(SEED), corpus["crash"]]
    proc = subprocess.Popen(cmd, env=flow_api["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    features_dir = root / "manifests" / "features"
    while not (features_dir.is_dir() and any(features_dir.glob("*.parquet"))):
        assert proc.poll() is None, f"flow ended before any analysis batch: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wh = open_warehouse(root)
    before = file_stats(wh, "features")
    analysed_before = {r["clip_id"] for r in wh.read("features").to_pylist() if r["status"] != "failed"}
    assert 0 < len(analysed_before) < N - 2, "the kill must land in the middle of the analysis"
    assert not (root / "shards" / "muedit").exists() or not list((root / "shards" / "muedit").glob("*.tar"))

    done = subprocess.run(cmd, env=flow_api["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    after = file_stats(wh, "features")
    assert all(after[name] == stat for name, stat in before.items()), "finished features batches were rewritten"
    rows = Counter(r["clip_id"] for r in wh.read("features", latest=False).to_pylist())
    assert all(rows[c] == 1 for c in analysed_before), "clips analysed before the kill were analysed again"
    assert latest_content(wh) == latest_content(reference["wh"])
    shas = lambda w: sorted((r["path"], r["sha256"]) for r in w.read("shards").to_pylist())
    assert shas(wh) == shas(reference["wh"])


def test_rerun_skips_finished_work(reference, corpus):
    wh = reference["wh"]
    features_before = file_stats(wh, "features")
    dialogues_before = file_stats(wh, "dialogues")
    with pytest.MonkeyPatch.context() as mp:
        inject(mp, corpus["crash"])
        summary = run_muedit(str(wh.root), str(corpus["dir"]), N, SEED)
    run = summary["run"]
    assert run["acquire"]["render"]["rendered"] == 0
    assert run["analyse"]["planned"] == 1  # only the crashed clip is tried again, as analysis does for failures
    assert run["caption"]["written"] == 0 and run["caption"]["cached"] == run["caption"]["items"]
    assert run["dialogue"]["accepted"] + run["dialogue"]["rejected"] == 0  # ok ones cached, the rejected one left alone
    assert all(file_stats(wh, "features")[k] == v for k, v in features_before.items())
    assert file_stats(wh, "dialogues") == dialogues_before
    assert summary["counts"] == reference["summary"]["counts"]


def test_build_mucaps_end_to_end(thread_built):
    from m2ugen_data.synth import load_truth
    from m2ugen_data.synth.corpus import TROUBLES

    built = thread_built["mucaps"]
    wh, summary = built["wh"], built["summary"]
    troubled = sum(t in TROUBLES for t in load_truth(built["corpus"]).column("trouble").to_pylist())
    assert troubled >= 1
    samples = _shard_samples(wh, "mucaps")
    music = wh.read("features", where="is_music").column("clip_id").to_pylist()
    n = wh.read("clips").num_rows
    assert sorted(s["__key__"] for s in samples) == sorted(music) and len(music) == n - troubled
    for s in samples:
        assert {k for k in s if not k.startswith("__")} == {"flac", "json"}
        y, sr = sf.read(io.BytesIO(s["flac"]))
        assert len(y) > sr
        sample = parse_sample_json(s["json"], "mucaps")
        assert sample.caption.strip() and sample.caption_source.backend == "grounded"
    assert summary["counts"]["shard_samples"] == len(samples) == summary["counts"]["captioned"]
    assert sum(v for k, v in summary["failures"].items() if k.startswith("analysis:rejected")) == troubled


def test_fan_out_finishes_every_batch_then_raises_and_retries_only_infrastructure_errors(flow_api, tmp_path):
    from prefect import flow

    from flows.steps import fan_out
    from flows.tasks import stage_task
    from m2ugen_data.errors import M2UGenError

    @stage_task(retry_delay_seconds=0)
    def work(batch: int, where: str) -> dict:
        marker = Path(where) / f"{batch}.tries"
        tries = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(tries))
        if batch == 1:
            raise M2UGenError("bad input the user must fix")  # not retried
        if batch == 2 and tries == 1:
            raise OSError("mount went away")  # retried
        return {"done": 1}

    @flow
    def fan(batches: list[int]) -> list[dict]:
        return fan_out(work, batches, "batch", name="work", where=str(tmp_path))

    assert fan([0, 2]) == [{"done": 1}, {"done": 1}]
    assert (tmp_path / "2.tries").read_text() == "2"
    with pytest.raises(M2UGenError):
        fan([1, 3])
    assert (tmp_path / "1.tries").read_text() == "1" and (tmp_path / "3.tries").read_text() == "1"
