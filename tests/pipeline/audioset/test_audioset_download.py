"""Downloads through the real yt-dlp + ffmpeg against a Range-capable media server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import yt_dlp
from typer.testing import CliRunner

from m2ugen_data.audio_io import load_audio
from m2ugen_data.audioset.download import DownloadConfig, download_clips
from m2ugen_data.audioset.failures import CORRUPT, INVALID, PERMANENT, TRANSIENT, classify
from m2ugen_data.testing.loopback_server import Faults, MediaServer
from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.cli import app
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import Warehouse, open_warehouse, utc_now

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is needed to render test media")


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Sources rendered once: a 60 s tone whose pitch steps up every 10 s, a short tone, a 640x480 video."""
    d = tmp_path_factory.mktemp("media")
    # 300 Hz in [0, 10), 400 Hz in [10, 20), ... 800 Hz in [50, 60): the pitch tells the time
    _ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*(300+100*floor(t/10))*t):s=44100:d=60",
            "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(d / "steps.m4a"))
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=12",
            "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(d / "short.m4a"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x480:rate=25:duration=12", "-f", "lavfi", "-i",
            "sine=frequency=330:duration=12", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(d / "video.mp4"))
    return {p.stem: p for p in d.iterdir()}


def _serve_dir(tmp_path: Path, files: dict[str, Path | bytes], ext: str = "m4a") -> Path:
    root = tmp_path / "served"
    root.mkdir(exist_ok=True)
    for ytid, src in files.items():
        target = root / f"{ytid}.{ext}"
        target.write_bytes(src if isinstance(src, bytes) else src.read_bytes())
    return root


def _segments(wh: Warehouse, rows: list[tuple[str, float, float, str]], batch: str = "test") -> None:
    wh.write_batch("segments", [
        {"clip_id": f"{y}_{round(s * 1000)}", "ytid": y, "start_s": s, "end_s": e, "labels": ["/m/04rlf"],
         "instruments": [], "genres": [], "moods": [], "pool": pool, "source": "test", "updated_at": utc_now()}
        for y, s, e, pool in rows
    ], batch)


def _config(srv: MediaServer, ext: str = "m4a", **kw) -> DownloadConfig:
    """Segment cuts for every pool (MUCaps' whole-audio default is tested in test_span.py)."""
    base = {"url_template": srv.url_template(ext), "concurrency": 2, "requests_per_s": None, "backoff_base_s": 0.01,
            "backoff_max_s": 0.05, "flush_every": 1, "span": "segment"}
    return DownloadConfig(**{**base, **kw})


def _latest(wh: Warehouse) -> dict[str, dict]:
    return {r["clip_id"]: r for r in wh.read("clips").to_pylist()}


def _visible_media(wh: Warehouse) -> list[str]:
    return sorted(p.name for p in (wh.root / "media").rglob("*") if p.is_file() and not p.name.startswith("."))


def _dominant_hz(y: np.ndarray, sr: int, t0: float, t1: float) -> float:
    seg = y[int(t0 * sr): int(t1 * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.fft.rfftfreq(len(seg), 1 / sr)[np.argmax(spec)])


def test_sections_are_cut_at_the_right_time_into_mono_flac(tmp_path, warehouse, media):
    root = _serve_dir(tmp_path, {"stepsAAAAAA": media["steps"]})
    _segments(warehouse, [("stepsAAAAAA", 20.0, 30.0, "mucaps"), ("stepsAAAAAA", 45.5, 55.5, "muedit")])
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv))
    assert summary.ok == 2 and not summary.failed
    rows = _latest(warehouse)
    for clip_id, start in [("stepsAAAAAA_20000", 20.0), ("stepsAAAAAA_45500", 45.5)]:
        row = rows[clip_id]
        path = warehouse.abspath(row["audio_path"])
        assert row["audio_path"] == f"media/audio/st/{clip_id}.flac" and row["video_path"] is None
        info = sf.info(path)
        assert (info.format, info.channels, info.samplerate) == ("FLAC", 1, 44100)
        assert row["sample_rate"] == 44100 and row["attempts"] == 1 and row["error_class"] is None
        assert abs(row["duration_s"] - 10.0) < 0.05
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and row["bytes"] == path.stat().st_size
        y, sr = load_audio(path)
        # the source's pitch at absolute time t is 300 + 100 * floor(t / 10) Hz
        for t in (0.3, 3.9, 5.1, 9.6):
            expect = 300 + 100 * ((start + t) // 10)
            assert abs(_dominant_hz(y, sr, t - 0.25, t + 0.25) - expect) < 10, (clip_id, t)


def test_404_is_permanent_and_not_retried_unless_asked(tmp_path, warehouse, media):
    root = _serve_dir(tmp_path, {"presentAAAA": media["short"]})
    _segments(warehouse, [("presentAAAA", 1.0, 11.0, "mucaps"), ("missingAAAA", 1.0, 11.0, "mucaps")])
    with MediaServer(root) as srv:
        first = download_clips(warehouse, _config(srv))
        assert first.ok == 1 and first.failed == {PERMANENT: 1}
        row = _latest(warehouse)["missingAAAA_1000"]
        assert (row["status"], row["error_class"], row["attempts"]) == ("failed", PERMANENT, 1)
        assert "404" in row["error"] and "\n" not in row["error"]
        hits = dict(srv.hits)
        again = download_clips(warehouse, _config(srv))
        assert (again.planned, again.skipped_done, again.skipped_permanent) == (0, 1, 1)
        assert dict(srv.hits) == hits  # nothing was requested
        forced = download_clips(warehouse, _config(srv, retry_failed=True))
        assert forced.planned == 1 and forced.failed == {PERMANENT: 1}
        assert srv.hits["missingAAAA.m4a"] == hits["missingAAAA.m4a"] + 1
    assert _latest(warehouse)["missingAAAA_1000"]["attempts"] == 2  # counted across runs
    assert _visible_media(warehouse) == ["presentAAAA_1000.flac"]


def test_503_twice_then_success_is_retried_with_backoff(tmp_path, warehouse, media):
    root = _serve_dir(tmp_path, {"flakyAAAAAA": media["short"], "downAAAAAAA": media["short"]})
    faults = Faults(fail_first={"flakyAAAAAA.m4a": (503, 2)}, status={"downAAAAAAA.m4a": 503})
    _segments(warehouse, [("flakyAAAAAA", 1.0, 11.0, "mucaps"), ("downAAAAAAA", 1.0, 11.0, "mucaps")])
    with MediaServer(root, faults) as srv:
        summary = download_clips(warehouse, _config(srv, max_attempts=3))
    rows = _latest(warehouse)
    assert (rows["flakyAAAAAA_1000"]["status"], rows["flakyAAAAAA_1000"]["attempts"]) == ("ok", 3)
    down = rows["downAAAAAAA_1000"]
    assert (down["status"], down["error_class"], down["attempts"]) == ("failed", TRANSIENT, 3)
    assert "503" in down["error"]
    assert summary.attempts == 6 and summary.ok == 1
    with MediaServer(root) as srv:  # the server recovered: a rerun retries the transient failure
        again = download_clips(warehouse, _config(srv))
    assert again.planned == 1 and again.ok == 1 and _latest(warehouse)["downAAAAAAA_1000"]["attempts"] == 4


def test_truncated_and_garbage_media_are_rejected_as_corrupt(tmp_path, warehouse, media):
    data = media["steps"].read_bytes()
    rng = np.random.default_rng(0)
    root = _serve_dir(tmp_path, {
        "truncatedAA": data[: len(data) * 4 // 10],  # the section [40, 50) lies past the end
        "garbageAAAA": rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes(),
    })
    _segments(warehouse, [("truncatedAA", 40.0, 50.0, "mucaps"), ("garbageAAAA", 10.0, 20.0, "mucaps")])
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv))
    assert summary.failed == {CORRUPT: 2}
    rows = _latest(warehouse)
    for clip_id in ("truncatedAA_40000", "garbageAAAA_10000"):
        assert (rows[clip_id]["status"], rows[clip_id]["error_class"], rows[clip_id]["audio_path"]) == ("failed", CORRUPT, None)
    assert _visible_media(warehouse) == []
    assert not list((warehouse.root / "media").rglob("*.tmp"))  # temporaries of failed attempts are removed


def test_video_pools_also_get_a_bounded_mp4(tmp_path, warehouse, media):
    root = _serve_dir(tmp_path, {"videoAAAAAA": media["video"]}, ext="mp4")
    _segments(warehouse, [("videoAAAAAA", 2.0, 8.0, "muvideo")])
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv, ext="mp4"))
    assert summary.ok == 1, _latest(warehouse)
    row = _latest(warehouse)["videoAAAAAA_2000"]
    assert row["video_path"] == "media/video/vi/videoAAAAAA_2000.mp4"
    with av.open(str(warehouse.abspath(row["video_path"]))) as c:
        assert not c.streams.audio
        v = c.streams.video[0]
        assert v.codec_context.height == 360 and v.codec_context.width == 480
        assert abs(c.duration / 1e6 - 6.0) < 0.2
    assert abs(row["duration_s"] - 6.0) < 0.05


def test_hostile_segment_rows_never_reach_a_path_or_a_request(tmp_path, warehouse, media):
    root = _serve_dir(tmp_path, {"goodAAAAAAA": media["short"]})
    _segments(warehouse, [("goodAAAAAAA", 1.0, 11.0, "mucaps")])
    # rows that bypassed `select` (written straight into the manifest)
    warehouse.write_batch("segments", [
        {"clip_id": cid, "ytid": ytid, "start_s": 0.0, "end_s": 10.0, "labels": [], "instruments": [], "genres": [],
         "moods": [], "pool": "mucaps", "source": "evil", "updated_at": utc_now()}
        for cid, ytid in [("../../etc/x_0", "../../etc/x"), ("--exec=calc_0", "--exec=calc"), ("_0", ""),
                          ("abcdefghijkl_0", "abcdefghijkl"), ("goodAAAAAAA_5000", "otherAAAAAA")]
    ], "evil")
    before = set(tmp_path.rglob("*"))
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv))
        assert set(srv.hits) == {"goodAAAAAAA.m4a"}
    assert summary.ok == 1 and summary.failed == {INVALID: 5}
    rows = _latest(warehouse)
    assert all("invalid" in rows[c]["error"] or "does not match" in rows[c]["error"]
               for c in rows if c != "goodAAAAAAA_1000")
    created = set(tmp_path.rglob("*")) - before
    assert created and all(warehouse.root in p.parents for p in created)
    again = download_clips(warehouse, DownloadConfig(url_template="http://127.0.0.1:9/{ytid}", requests_per_s=None,
                                                      span="segment"))
    assert again.planned == 0 and again.skipped_permanent == 5  # invalid rows are not attempted again


def test_killed_download_leaves_no_partial_media_and_a_rerun_resumes(tmp_path, media):
    wh = open_warehouse(tmp_path / "wh")
    fast, slow = ["AAAAfast001", "AAAAfast002"], ["ZZZZslow001", "ZZZZslow002"]
    root = _serve_dir(tmp_path, {y: media["short"] for y in fast + slow})
    _segments(wh, [(y, 1.0, 11.0, "mucaps") for y in fast + slow])
    faults = Faults(bytes_per_s={f"{y}.m4a": 6000.0 for y in slow})
    with MediaServer(root, faults) as srv:
        script = textwrap.dedent(f"""
            from m2ugen_data.audioset.download import DownloadConfig, download_clips
            from m2ugen_data.warehouse import open_warehouse
            download_clips(open_warehouse({str(wh.root)!r}), DownloadConfig(
                url_template={srv.url_template()!r}, concurrency=2, requests_per_s=None, flush_every=1))
        """)
        child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = [r for r in _latest(wh).values() if r["status"] == "ok"]
                tmp = list((wh.root / "media" / "audio" / "ZZ").glob(".*.tmp"))
                if len(done) == 2 and tmp:
                    break
                assert child.poll() is None, "the downloader finished before it could be killed"
                time.sleep(0.1)
            else:
                pytest.fail("the slow downloads never started")
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # the whole job: Python and its ffmpeg children
            child.wait()
    assert _visible_media(wh) == ["AAAAfast001_1000.flac", "AAAAfast002_1000.flac"]
    assert set(_latest(wh)) == {"AAAAfast001_1000", "AAAAfast002_1000"}

    with MediaServer(root) as srv:  # a healthy server this time
        summary = download_clips(wh, DownloadConfig(url_template=srv.url_template(), concurrency=2, requests_per_s=None))
        assert not any(name.startswith("AAAA") for name in srv.hits)  # finished clips are not fetched again
    assert (summary.skipped_done, summary.ok, summary.failed) == (2, 2, {})
    assert _visible_media(wh) == sorted(f"{y}_1000.flac" for y in fast + slow)
    assert not list((wh.root / "media").rglob("*.tmp"))  # the killed run's temporaries were cleaned
    assert {r["status"] for r in _latest(wh).values()} == {"ok"}


def test_import_synthetic_records_clips_like_a_download(warehouse, synth_corpus):
    from m2ugen_data.synth import load_truth

    truth = {r["clip_id"]: r for r in load_truth(synth_corpus).to_pylist()}
    report = import_synthetic(warehouse, synth_corpus, "muedit")
    assert report.ok == len(truth) and not report.failed
    segments = warehouse.read("segments").to_pylist()
    assert {s["clip_id"] for s in segments} == set(truth)
    assert {s["pool"] for s in segments} == {"muedit"} and {s["source"] for s in segments} == {"synthetic"}
    for s in segments:
        assert sorted(s["instruments"]) == sorted(truth[s["clip_id"]]["instruments"]) or truth[s["clip_id"]]["trouble"] != "none"
    for row in warehouse.read("clips").to_pylist():
        src = synth_corpus / truth[row["clip_id"]]["audio_path"]
        assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert warehouse.abspath(row["audio_path"]).read_bytes() == src.read_bytes()
        assert abs(row["duration_s"] - truth[row["clip_id"]]["duration_s"]) < 1e-3
    files = (warehouse.manifest_files("segments"), warehouse.manifest_files("clips"))
    import_synthetic(warehouse, synth_corpus, "muedit")  # idempotent: same batches replaced
    assert (warehouse.manifest_files("segments"), warehouse.manifest_files("clips")) == files


def test_cli_download_shows_a_summary_and_status(tmp_path, media):
    wh = open_warehouse(tmp_path / "wh")
    root = _serve_dir(tmp_path, {"cliAAAAAAAA": media["short"]})
    _segments(wh, [("cliAAAAAAAA", 1.0, 11.0, "mucaps"), ("goneAAAAAAA", 1.0, 11.0, "mucaps")])
    runner = CliRunner()
    with MediaServer(root) as srv:
        result = runner.invoke(app, ["--warehouse", str(wh.root), "audioset", "download", "--url-template",
                                     srv.url_template(), "--concurrency", "2", "--rate-limit", "0"])
    assert result.exit_code == 0, result.output
    assert "download summary" in result.output and "failed: permanent" in result.output
    status = runner.invoke(app, ["--warehouse", str(wh.root), "audioset", "status"])
    assert status.exit_code == 0 and "permanent" in status.output and "ok" in status.output
    bad = runner.invoke(app, ["--warehouse", str(wh.root), "audioset", "download", "--url-template", "http://x/{id}"])
    assert bad.exit_code != 0 and isinstance(bad.exception, M2UGenError)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (yt_dlp.utils.ExtractorError("Video unavailable. This video has been removed by the uploader", expected=True), PERMANENT),
        (yt_dlp.utils.ExtractorError("Private video. Sign in if you've been granted access", expected=True), PERMANENT),
        (yt_dlp.utils.ExtractorError("Sign in to confirm your age. This video may be inappropriate", expected=True), PERMANENT),
        (yt_dlp.utils.GeoRestrictedError("The uploader has not made this video available in your country"), PERMANENT),
        (yt_dlp.utils.ExtractorError("Requested format is not available", expected=True), PERMANENT),
        (yt_dlp.utils.ExtractorError("Sign in to confirm you're not a bot", expected=True), TRANSIENT),
        (yt_dlp.utils.ExtractorError("Video unavailable. This content isn't available, try again later", expected=True), TRANSIENT),
        (yt_dlp.utils.DownloadError("ERROR: Unable to download webpage: <urlopen error timed out>"), TRANSIENT),
        (yt_dlp.utils.DownloadError("ERROR: ffmpeg exited with code 1"), CORRUPT),
        (yt_dlp.utils.DownloadError("ERROR: something nobody has seen before"), TRANSIENT),
    ],
)
def test_failure_classes_from_yt_dlp_messages(exc, expected):
    wrapped = yt_dlp.utils.DownloadError(f"ERROR: {exc}", exc_info=(type(exc), exc, None))
    failure = classify(wrapped)
    assert failure.error_class == expected
    assert "\n" not in failure.message and not failure.message.startswith("ERROR")


def test_config_rejects_unsafe_templates_and_unknown_pools():
    for template in ("https://x/watch", "https://x/{ytid}/{ytid}", "https://x/{ytid.__class__}", "https://x/{ytid}{0}"):
        with pytest.raises(M2UGenError):
            DownloadConfig(url_template=template)
    with pytest.raises(M2UGenError, match="unknown pools"):
        DownloadConfig(pools=("nope",))


def test_rate_limiter_spaces_requests_per_host_and_backoff_grows(monkeypatch):
    from m2ugen_data.audioset import download as dl

    clock = {"now": 100.0}
    slept: list[float] = []
    monkeypatch.setattr(dl.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(dl.time, "sleep", lambda s: slept.append(round(s, 6)))
    limiter = dl.HostRateLimiter(2.0)  # two request starts per second per host
    for host in ("a", "a", "a", "b"):
        limiter.wait(host)
    assert slept == [0.5, 1.0]  # the 2nd and 3rd request to host a wait; host b does not
    assert dl.HostRateLimiter(None).interval == 0.0
    delays = [dl.backoff_s(n, 1.0, 5.0) for n in (1, 2, 3, 4, 5)]
    for n, d in zip((1, 2, 3, 4, 5), delays):
        assert 0.5 * min(5.0, 2 ** (n - 1)) <= d <= 1.5 * min(5.0, 2 ** (n - 1))


def test_plan_filters_pools_applies_limit_and_refetches_missing_files(warehouse):
    from m2ugen_data.audioset.download import plan_downloads

    _segments(warehouse, [("aaaaaaaaaaa", 0.0, 10.0, "mucaps"), ("bbbbbbbbbbb", 0.0, 10.0, "muedit"),
                          ("ccccccccccc", 0.0, 10.0, "muedit"), ("ddddddddddd", 0.0, 10.0, "muvideo")])
    present = warehouse.media_path("audio", "ccccccccccc_0", "flac")
    present.parent.mkdir(parents=True)
    present.write_bytes(b"x")
    ok = {"status": "ok", "error_class": None, "error": None, "attempts": 1, "video_path": None, "duration_s": 10.0,
          "sample_rate": 44100, "bytes": 1, "sha256": "0" * 64, "span": None, "span_start_s": None, "updated_at": utc_now()}
    warehouse.write_batch("clips", [
        {**ok, "clip_id": "bbbbbbbbbbb_0", "audio_path": "media/audio/bb/bbbbbbbbbbb_0.flac"},  # file gone
        {**ok, "clip_id": "ccccccccccc_0", "audio_path": "media/audio/cc/ccccccccccc_0.flac"},
        {**ok, "clip_id": "ddddddddddd_0", "audio_path": "media/audio/cc/ccccccccccc_0.flac"},  # video missing
    ], "prev")
    jobs, summary = plan_downloads(warehouse, DownloadConfig(pools=("muedit",)))
    assert [j.clip_id for j in jobs] == ["bbbbbbbbbbb_0"] and summary.skipped_done == 1
    assert jobs[0].prev_attempts == 1
    jobs, _ = plan_downloads(warehouse, DownloadConfig())
    assert [j.clip_id for j in jobs] == ["aaaaaaaaaaa_0", "bbbbbbbbbbb_0", "ddddddddddd_0"]
    jobs, _ = plan_downloads(warehouse, DownloadConfig(limit=1))
    assert [j.clip_id for j in jobs] == ["aaaaaaaaaaa_0"]
