"""The dataset card (``m2ugen-data report``): what it says about a hand-made warehouse, that it opens in a real
headless Chromium with every resource loading and its figures drawn, and that absent data never crashes it."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from rows import with_nulls
from shard_warehouse import SR, T0, make_tiny_warehouse
from typer.testing import CliRunner

from m2ugen_data.audio_io import write_flac
from m2ugen_data.errors import WarehouseError
from m2ugen_data.ids import make_clip_id
from m2ugen_data.report import write_report
from m2ugen_data.report.build import MARKER
from m2ugen_data.report.datasets import DATASETS
from m2ugen_data.report.queries import dataset_stats
from m2ugen_data.vision.media_stage import media_relpath_for
from m2ugen_data.vision.synth_video import plan_video, render_video
from m2ugen_data.warehouse import Warehouse, open_warehouse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
HOSTILE_CAPTION = 'A <script>alert("x")</script> caption & more'


def _visual_clips(wh: Warehouse, kind: str, pool: str, n: int) -> list[str]:
    """``n`` clips of ``pool`` with a sine FLAC, ok features, an ok frame/clip on disk, captions and ok dialogues;
    the last one's media was rejected (black) so it has no file."""
    ids = [make_clip_id(f"{pool[2:4]}{i:09d}", 10.0 * i) for i in range(n)]
    t = np.arange(SR * 2) / SR
    segs, clips, feats, media, caps, dlgs = [], [], [], [], [], []
    for i, c in enumerate(ids):
        audio = write_flac(wh.media_path("audio", c, "flac"), 0.3 * np.sin(2 * np.pi * (330 + 50 * i) * t), SR)
        ok = i < n - 1
        rel = media_relpath_for(kind, c)
        if ok and kind == "image":
            (wh.root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (640, 360), (30 + 60 * i, 120, 200)).save(wh.root / rel)
        elif ok:
            (wh.root / rel).parent.mkdir(parents=True, exist_ok=True)
            render_video(wh.root / rel, plan_video(c, scene="moving_box", duration_s=2.0))
        segs.append(with_nulls("segments", {
            "clip_id": c, "ytid": c[:11], "start_s": 10.0 * i, "end_s": 10.0 * i + 10, "labels": ["/m/04rlf"],
            "instruments": [], "genres": [], "moods": [], "pool": pool, "source": "eval", "updated_at": T0}))
        clips.append(with_nulls("clips", {
            "clip_id": c, "status": "ok", "attempts": 1, "audio_path": audio.relative_to(wh.root).as_posix(),
            "duration_s": 2.0, "sample_rate": SR, "bytes": audio.stat().st_size, "sha256": f"{i:064x}", "updated_at": T0}))
        feats.append(with_nulls("features", {
            "clip_id": c, "status": "ok", "analyser_version": "test-1", "duration_s": 2.0, "tempo_bpm": 90.0 + 20 * i,
            "meter": 3, "key": "D major", "loudness_lufs": -20.0 + i, "is_music": True, "music_reasons": [],
            "instruments": ["piano", "drums"], "genres": ["jazz"], "moods": ["calm"], "updated_at": T0}))
        media.append(with_nulls("visual_media", {
            "clip_id": c, "kind": kind, "status": "ok" if ok else "rejected", "reason": None if ok else "black",
            "extractor_version": f"{kind}-test-1", "path": rel.as_posix() if ok else None, "updated_at": T0}))
        caps += [with_nulls("captions", {"item_id": c, "modality": kind, "backend": "grounded", "prompt_hash": "v",
                                         "text": f"a blue {kind} number {i}", "created_at": T0}),
                 with_nulls("captions", {"item_id": c, "modality": "audio", "backend": "grounded", "prompt_hash": "a",
                                         "text": f"calm jazz piano number {i}", "created_at": T0})]
        dlgs.append(with_nulls("dialogues", {
            "dataset": pool, "sample_id": c, "input_id": c, "output_id": c, "human": f"Music for this {kind}, please.",
            "gpt": f"Here is calm jazz for {kind} {i}.", "backend": "template", "status": "ok", "reasons": [],
            "attempts": 1, "created_at": T0}))
    for name, rows in (("segments", segs), ("clips", clips), ("features", feats), ("visual_media", media),
                       ("captions", caps), ("dialogues", dlgs)):
        wh.write_batch(name, rows, f"{pool}-{name}")
    return ids


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """All four datasets: MUCaps/MUEdit from the tiny shard warehouse (plus one failed download, one silent
    clip, one speech-rejected clip and a hostile caption), MUImage with frames, MUVideo with real MP4s."""
    wh = open_warehouse(tmp_path_factory.mktemp("report") / "wh")
    tiny = make_tiny_warehouse(wh, n_clips=8, seconds=2.0)
    mucaps = tiny.clip_ids[0::2]
    features = wh.read("features").to_pylist()
    for row in features:
        row["instruments"], row["genres"], row["moods"] = ["guitar"], ["rock"], ["happy"]
        if row["clip_id"] == mucaps[1]:
            row.update(is_music=False, music_reasons=["speech", "low_music_score"])
        if row["clip_id"] == mucaps[2]:
            row.update(status="rejected", reason="silent: 0.98 of frames below -60 dBFS")
    wh.write_batch("features", features, "feat-0")
    pairs = wh.read("pairs").to_pylist()
    for i, row in enumerate(pairs):
        row["harmony_sim"] = 0.15 * i
    wh.write_batch("pairs", pairs, "pairs-0")
    failed = make_clip_id("zz000000001", 5.0)
    wh.write_batch("segments", [with_nulls("segments", {
        "clip_id": failed, "ytid": failed[:11], "start_s": 5.0, "end_s": 15.0, "labels": [], "instruments": [],
        "genres": [], "moods": [], "pool": "mucaps", "source": "balanced_train", "updated_at": T0})], "seg-failed")
    wh.write_batch("clips", [with_nulls("clips", {"clip_id": failed, "status": "failed", "error_class": "permanent",
                                                  "error": "Video unavailable", "attempts": 3, "updated_at": T0})], "clips-failed")
    wh.write_batch("captions", [with_nulls("captions", {"item_id": mucaps[0], "modality": "audio", "backend": "mu-llama",
                                                        "prompt_hash": "p1", "text": HOSTILE_CAPTION,
                                                        "created_at": T0.replace(year=2025)})], "cap-hostile")
    wh.write_batch("shards", [with_nulls("shards", {
        "dataset": "muedit", "path": "shards/muedit/muedit-000000.tar", "samples": 4, "bytes": 4096, "sha256": "ab" * 32,
        "created_at": T0})], "shards-0")
    images = _visual_clips(wh, "image", "muimage", 3)
    videos = _visual_clips(wh, "video", "muvideo", 2)
    index = write_report(wh)
    return {"wh": wh, "index": index, "tiny": tiny, "mucaps": mucaps, "failed": failed, "images": images, "videos": videos}


def test_card_layout_counts_and_funnel(card):
    index, out = card["index"], card["index"].parent
    assert index == card["wh"].root / "report" / "index.html"
    for spec in DATASETS:
        assert (out / spec.name / "index.html").is_file() and (out / spec.name / "README.md").is_file()
    mucaps = (out / "mucaps" / "index.html").read_text()
    # counts (4 MUCaps clips of the tiny warehouse + the failed download) and the funnel's recorded reasons
    assert "5 (5 videos)" in mucaps and "4 clips, 0.00 h" in mucaps
    for reason in ("failed: permanent: 1", "rejected: silent: 1", "speech: 1", "low_music_score: 1"):
        assert reason in mucaps
    # captions are data: escaped, never markup
    assert "<script>" not in mucaps and "&lt;script&gt;" in mucaps
    muedit = (out / "muedit" / "index.html").read_text()
    assert "off_topic: 2" in muedit  # the two rejected dialogues, by reason
    assert {p.name for p in (out / "muedit" / "figures").iterdir()} >= {"funnel.png", "rhythm.png", "key.png", "pairs.png", "text.png"}
    # a few samples only, each as a small MP3 (muedit: source and target of 3 pairs, at most 4 samples)
    mp3s = list((out / "muedit" / "media").glob("*.mp3"))
    assert 2 <= len(mp3s) <= 8 and all(p.stat().st_size < 200_000 for p in mp3s)
    assert len(list((out / "muimage" / "media").glob("*.jpg"))) == 2  # the rejected frame has no thumbnail
    assert len(list((out / "muvideo" / "media").glob("*.jpg"))) == 1
    assert "image missing from the warehouse" in (out / "muimage" / "index.html").read_text()


def test_rerun_reuses_figures_of_unchanged_data_only(card):
    """Every flow rewrites the whole card: datasets whose data did not change keep their drawn figures."""
    from m2ugen_data.report.build import _figures_key

    out = card["index"].parent
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/figures/*.png")}
    marker = out / "muedit" / "stale-from-the-first-card.txt"
    marker.write_text("x")
    assert write_report(card["wh"]) == card["index"]
    assert not marker.exists()  # the card itself is new ...
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/figures/*.png")} == mtimes  # ... its figures reused
    con = card["wh"].connect()
    stats = dataset_stats(con, DATASETS[1])
    con.close()
    key = _figures_key(stats)
    stats.features["tempo_bpm"][0] += 1.0
    assert _figures_key(stats) != key  # any change to what is drawn redraws


def test_readme_is_a_hugging_face_card_with_provenance(card):
    text = (card["index"].parent / "muedit" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["pretty_name"] == "MUEdit" and "audio-to-audio" in meta["task_categories"]
    assert meta["configs"][0]["data_files"] == "muedit-*.tar"
    assert "](figures/funnel.png)" in text and "shards/muedit/muedit-000000.tar" in text
    assert "`test-1`" in text  # the analyser version the rows carry
    page = (card["index"].parent / "muedit" / "index.html").read_text()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    if commit.returncode == 0:
        assert commit.stdout.strip() in page


def test_empty_warehouse_and_absent_datasets(warehouse):
    """Nothing built: every page says so, no figure is drawn, nothing crashes; a rerun replaces the card."""
    index = write_report(warehouse)
    assert "No dataset has been built" in index.read_text()
    for spec in DATASETS:
        page = (index.parent / spec.name / "index.html").read_text()
        assert f"{spec.title} is not in this warehouse" in page
        assert not (index.parent / spec.name / "figures").exists()
    stale = index.parent / "mucaps" / "stale.png"
    stale.write_bytes(b"old")
    assert write_report(warehouse) == index and not stale.exists()
    leftovers = [p for p in index.parent.parent.glob(".report.*") if p.suffix in (".tmp", ".old")]
    assert not leftovers  # no temporary or replaced card left behind


def test_refuses_to_replace_a_directory_it_did_not_write(warehouse, tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(WarehouseError, match="refusing to replace"):
        write_report(warehouse, precious)
    assert (precious / "thesis.tex").read_text() == "do not delete"
    assert not (precious / MARKER).exists()


def test_cli_report_command(warehouse, tmp_path):
    from m2ugen_data.cli import app

    out = tmp_path / "card[v2]"  # printed as it is: not taken for rich markup
    result = CliRunner().invoke(app, ["--warehouse", str(warehouse.root), "report", "--out", str(out), "--samples", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and str(out / "index.html") in result.output.replace("\n", "")


def test_flows_link_the_card_and_say_why_when_it_cannot_be_written(warehouse, monkeypatch):
    from flows import steps

    made = []
    monkeypatch.setattr(steps, "create_link_artifact", lambda link, **kw: made.append(("link", link, kw["key"])))
    monkeypatch.setattr(steps, "create_markdown_artifact", lambda text, **kw: made.append(("markdown", text, kw["key"])))
    index = steps.publish_card(str(warehouse.root), "build-mucaps")
    assert index == warehouse.root / "report" / "index.html" and index.is_file()
    assert made == [("link", index.as_uri(), "build-mucaps-card")]
    shutil.rmtree(index.parent)
    (index.parent / "mine").mkdir(parents=True)  # a directory the user made: never replaced, the run goes on
    made.clear()
    assert steps.publish_card(str(warehouse.root), "build-mucaps") is None
    assert made[0][0] == "markdown" and "refusing to replace" in made[0][1] and made[0][2] == "build-mucaps-card"


# ---- the real browser --------------------------------------------------------------------------------------


class Chromium:
    """Headless Chromium driven over the DevTools protocol: load a page, collect every failed load and every
    console error, wait for media metadata, and take screenshots."""

    def __init__(self, profile: Path) -> None:
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=20)
        self.next_id, self.events = 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Log", "Runtime"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def call(self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)["result"].get("value")

    def load(self, path: Path) -> list[str]:
        """Open ``path`` and return every problem: failed requests, HTTP errors, console errors, broken images
        or media. Waits for the load event and for every audio element's metadata (or its error)."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.as_uri()}, session=True)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{path} did not finish loading"
            self.evaluate("1")  # pumps the event stream
        settled = "[...document.querySelectorAll('audio,video')].every(m => m.readyState >= 1 || m.error)"
        while not self.evaluate(settled):
            assert time.monotonic() < deadline, f"{path}: media never loaded its metadata"
            time.sleep(0.1)
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"}
        problems = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            # a player stops reading once it has the metadata (ERR_ABORTED); a missing file is ERR_FILE_NOT_FOUND,
            # and every player's state is checked below
            if method == "Network.loadingFailed" and not (p.get("type") == "Media" and p["errorText"] == "net::ERR_ABORTED"):
                problems.append(f"failed: {urls.get(p['requestId'], '?')} ({p['errorText']})")
            elif method == "Network.responseReceived" and p["response"].get("status", 200) >= 400:
                problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                problems.append(f"console: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif method == "Runtime.exceptionThrown":
                problems.append(f"exception: {p['exceptionDetails'].get('text')}")
        broken = self.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
            ".concat([...document.querySelectorAll('audio,video')].filter(m => m.error).map(m => m.src))"
        )
        return problems + [f"broken element: {src}" for src in broken]

    def figure_shots(self) -> list[Image.Image]:
        """A screenshot of each ``img.figure`` as the browser drew it."""
        rects = self.evaluate(
            "[...document.querySelectorAll('img.figure')].map(i => { const r = i.getBoundingClientRect();"
            " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })"
        )
        shots = []
        for x, y, w, h in rects:
            clip = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
            data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=True)["data"]
            shots.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
        return shots

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh installs it as root)")
    b = Chromium(tmp_path / "chromium-profile")
    yield b
    b.close()


def _drawn(shot: Image.Image) -> bool:
    """A drawn figure: a real share of non-white pixels and real contrast (a blank or failed image has neither)."""
    px = np.asarray(shot, dtype=np.float32)
    return shot.width > 100 and shot.height > 100 and (px < 200).mean() > 0.01 and px.std() > 20


def test_card_opens_in_chromium_with_every_resource_and_drawn_figures(card, browser, tmp_path):
    out = card["index"].parent
    assert browser.load(out / "index.html") == []
    assert browser.evaluate("document.querySelectorAll('a[href$=\"/index.html\"]').length") == len(DATASETS)
    shots = browser.figure_shots()
    assert len(shots) == 1 and _drawn(shots[0])
    for name in ("muedit", "muvideo"):
        assert browser.load(out / name / "index.html") == [], name
        shots = browser.figure_shots()
        assert len(shots) >= 5 and all(_drawn(s) for s in shots), name
        # the sample players really loaded their audio (metadata: duration of the 2 s clips)
        durations = browser.evaluate("[...document.querySelectorAll('audio')].map(a => a.duration)")
        assert durations and all(1.5 < d < 2.5 for d in durations), (name, durations)
    assert browser.load(out / "muvideo" / "index.html") == []
    assert browser.evaluate("[...document.querySelectorAll('img.thumb')].map(i => i.naturalWidth)") == [320]
    # the check is real: a card with a figure and a sample file taken away is reported, by name
    moved = shutil.copytree(out, tmp_path / "broken")
    (moved / "muedit" / "figures" / "key.png").unlink()
    next((moved / "muedit" / "media").glob("*.mp3")).unlink()
    problems = browser.load(moved / "muedit" / "index.html")
    assert any("key.png" in p for p in problems) and any(".mp3" in p for p in problems), problems


def test_histogram_of_values_equal_up_to_float_noise_is_drawn(tmp_path):
    """Every pair at tempo ratio 1.0 (within 1e-16) once failed the whole card: numpy cannot cut 20 bins there."""
    from m2ugen_data.report import figures

    fig, (ax,) = figures._new(4, 3)
    figures._hist(ax, [1.0, 1.0 + 2e-16, 1.0], "tempo ratio")
    assert sum(p.get_height() for p in ax.patches) == 3


def test_readme_carries_captions_as_text_never_as_html(card):
    """Hubs render a README's Markdown with its inline HTML: a caption's markup must arrive escaped."""
    text = (card["index"].parent / "mucaps" / "README.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert yaml.safe_load(text.split("---\n")[1])["pretty_name"] == "MUCaps"  # the front matter stays YAML
