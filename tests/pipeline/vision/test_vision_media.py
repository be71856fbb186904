"""Frames (MUImage), normalised clips (MUVideo), their measurements, the media stage and music disjointness,
all on synthetic videos whose truth (colour, motion, black, cuts) is known by construction."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from m2ugen_data.audio_io import write_flac
from m2ugen_data.vision import measures
from m2ugen_data.vision.clips import measure_clip, normalise_clip
from m2ugen_data.shards.disjoint import music_ids_from_keys, music_ids_from_manifests, music_overlaps
from m2ugen_data.vision.frames import extract_frame
from m2ugen_data.vision.media_stage import normalised_clip_relpath, pending_clips, run_media
from vision_warehouse import seed_warehouse


@pytest.fixture
def audio_only(tmp_path: Path) -> Path:
    path = tmp_path / "audio_only.mp4"
    write_flac(path, np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3, 16000)
    return path


def test_measurements_recover_scene_truth(synth_videos):
    for scene, (path, truth) in synth_videos.items():
        m = measure_clip(path)
        assert (m.motion >= measures.STATIC_MOTION) == truth.moving, scene
        assert (m.black_fraction >= 0.95) == truth.black, scene
        assert m.scene_cuts == truth.scene_cuts, scene
        if scene in ("moving_box", "static_box", "plain"):
            assert m.dominant_colors[0] == truth.dominant_color, scene
        if scene == "cut":
            assert set(m.dominant_colors[:2]) == {truth.dominant_color, truth.second_color}


def test_frame_after_black_lead_in_is_from_the_picture(synth_videos, tmp_path):
    path, truth = synth_videos["black_lead"]
    r = extract_frame(path, tmp_path / "f.jpg")
    assert r.status == "ok" and r.frame_time_s >= truth.black_until_s
    with Image.open(tmp_path / "f.jpg") as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape == (240, 320, 3)
    assert measures.dominant_colors([rgb])[0] == truth.dominant_color
    assert r.dominant_colors[0] == truth.dominant_color


def test_frame_choice_prefers_detail_and_is_deterministic(synth_videos, tmp_path):
    path, _ = synth_videos["testsrc"]
    a, b = extract_frame(path, tmp_path / "a.jpg"), extract_frame(path, tmp_path / "b.jpg")
    assert a == b and (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    plain_box, _ = synth_videos["static_box"]
    assert a.sharpness > extract_frame(plain_box, tmp_path / "c.jpg").sharpness


@pytest.mark.parametrize(("scene", "reason"), [("black", "black"), ("plain", "uniform")])
def test_black_and_uniform_videos_give_no_frame(synth_videos, tmp_path, scene, reason):
    r = extract_frame(synth_videos[scene][0], tmp_path / "x.jpg")
    assert (r.status, r.reason) == ("rejected", reason)
    assert not (tmp_path / "x.jpg").exists()


def test_undecodable_inputs_are_recorded(tmp_path, audio_only):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    cases = {"missing": tmp_path / "nope.mp4", "no_video_stream": audio_only, "undecodable": garbage}
    for reason, path in cases.items():
        assert (extract_frame(path, tmp_path / "o.jpg").reason, normalise_clip(path, tmp_path / "o.mp4").reason) == (reason, reason)
    assert not (tmp_path / "o.jpg").exists() and not (tmp_path / "o.mp4").exists()


def test_normalised_clip_format(synth_videos, tmp_path):
    path, _ = synth_videos["cut"]
    r = normalise_clip(path, tmp_path / "n.mp4", fps=8, short_side=128)
    assert r.status == "ok" and r.measures.scene_cuts == 1
    with av.open(str(tmp_path / "n.mp4")) as c:
        assert not c.streams.audio
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert float(v.average_rate) == 8.0
        frames = [f for f in c.decode(v)]
    assert (frames[0].height, frames[0].width) == (128, 170)
    assert len(frames) == r.frames == 80
    assert (r.width, r.height) == (170, 128)


def test_media_stage_records_every_clip_and_resumes(warehouse, synth_videos, audio_only):
    entries = [
        ("imgAAAAAAAA_0", "muimage", synth_videos["moving_box"][0]),
        ("imgBBBBBBBB_0", "muimage", synth_videos["black"][0]),
        ("imgCCCCCCCC_0", "muimage", audio_only),
        ("imgDDDDDDDD_0", "muimage", b"not a video at all"),
        ("imgEEEEEEEE_0", "muimage", None),
        ("vidAAAAAAAA_0", "muvideo", synth_videos["moving_box"][0]),
        ("vidBBBBBBBB_0", "muvideo", synth_videos["static_box"][0]),
        ("vidCCCCCCCC_0", "muvideo", synth_videos["black"][0]),
        ("vidDDDDDDDD_0", "muvideo", synth_videos["cut"][0]),
    ]
    seed_warehouse(warehouse, entries)
    img = run_media(warehouse, "image", workers=2)
    vid = run_media(warehouse, "video", workers=2)
    rows = {(r["clip_id"], r["kind"]): r for r in warehouse.read("visual_media").to_pylist()}
    assert len(rows) == 9
    outcome = {k: (r["status"], r["reason"]) for k, r in rows.items()}
    assert outcome == {
        ("imgAAAAAAAA_0", "image"): ("ok", None),
        ("imgBBBBBBBB_0", "image"): ("rejected", "black"),
        ("imgCCCCCCCC_0", "image"): ("failed", "no_video_stream"),
        ("imgDDDDDDDD_0", "image"): ("failed", "undecodable"),
        ("imgEEEEEEEE_0", "image"): ("failed", "missing"),
        ("vidAAAAAAAA_0", "video"): ("ok", None),
        ("vidBBBBBBBB_0", "video"): ("rejected", "static"),
        ("vidCCCCCCCC_0", "video"): ("rejected", "black"),
        ("vidDDDDDDDD_0", "video"): ("ok", None),
    }
    assert img["ok"] == 1 and img["failed"] == 3 and vid["ok"] == 2 and vid["rejected:static"] == 1
    ok_img = rows[("imgAAAAAAAA_0", "image")]
    assert warehouse.abspath(ok_img["path"]).is_file() and ok_img["dominant_colors"][0] == synth_videos["moving_box"][1].dominant_color
    ok_vid = rows[("vidDDDDDDDD_0", "video")]
    assert ok_vid["path"] == str(normalised_clip_relpath("vidDDDDDDDD_0")) and ok_vid["scene_cuts"] == 1
    assert ok_vid["frames"] == 160 and ok_vid["fps"] == 16.0
    # Resumable: only the failed ones are pending again; rerunning writes no new rows for done clips.
    assert pending_clips(warehouse, "image") == ["imgCCCCCCCC_0", "imgDDDDDDDD_0", "imgEEEEEEEE_0"]
    assert pending_clips(warehouse, "video") == []
    files = warehouse.manifest_files("visual_media")
    run_media(warehouse, "video")
    assert warehouse.manifest_files("visual_media") == files


def test_music_overlaps_at_clip_video_and_audio_level():
    ids = {
        "mucaps": {"aaaaaaaaaaa_0", "bbbbbbbbbbb_0", "ddddddddddd_0"},
        "muedit": music_ids_from_keys("muedit", ["eeeeeeeeeee_0__fffffffffff_0"]),
        "muimage": {"aaaaaaaaaaa_0", "bbbbbbbbbbb_30000", "ccccccccccc_0", "fffffffffff_0"},
        "muvideo": {"ggggggggggg_0"},
    }
    digests = {"ggggggggggg_0": "x", "ddddddddddd_0": "x"}
    found = {(o["clip_id"], o["other_dataset"], o["other_clip_id"], o["match"]) for o in music_overlaps(ids, digests=digests)}
    assert found == {
        ("aaaaaaaaaaa_0", "mucaps", "aaaaaaaaaaa_0", "clip"),
        ("bbbbbbbbbbb_30000", "mucaps", "bbbbbbbbbbb_0", "video"),
        ("fffffffffff_0", "muedit", "fffffffffff_0", "clip"),
        ("ggggggggggg_0", "mucaps", "ddddddddddd_0", "audio"),
    }
    assert music_overlaps({"mucaps": {"aaaaaaaaaaa_0"}, "muimage": {"ccccccccccc_0"}}) == []


def test_music_overlaps_by_near_duplicate_group():
    """Pools are disjoint by group: the same recording uploaded twice (re-encoded, other ID) is an overlap."""
    ids = {"mucaps": {"aaaaaaaaaaa_0"}, "muimage": {"hhhhhhhhhhh_0"}}
    assert music_overlaps(ids) == []  # before: by IDs and bytes these two were disjoint
    groups = {"aaaaaaaaaaa_0": "aaaaaaaaaaa_0", "hhhhhhhhhhh_0": "aaaaaaaaaaa_0"}
    found = [(o["clip_id"], o["other_clip_id"], o["match"]) for o in music_overlaps(ids, groups=groups)]
    assert found == [("hhhhhhhhhhh_0", "aaaaaaaaaaa_0", "sound")]


def test_music_ids_from_manifests(warehouse, synth_videos):
    seed_warehouse(warehouse, [("imgAAAAAAAA_0", "muimage", synth_videos["moving_box"][0]),
                               ("capAAAAAAAA_0", "mucaps", None)])
    run_media(warehouse, "image")
    ids = music_ids_from_manifests(warehouse)
    assert ids["muimage"] == {"imgAAAAAAAA_0"} and ids["mucaps"] == {"capAAAAAAAA_0"}
    assert music_overlaps(ids) == []


def test_cli_media_frames_and_disjoint(warehouse, synth_videos):
    from m2ugen_data.cli import app

    seed_warehouse(warehouse, [("imgAAAAAAAA_0", "muimage", synth_videos["moving_box"][0]),
                               ("imgAAAAAAAA_20000", "mucaps", None)])
    runner = CliRunner()
    res = runner.invoke(app, ["-w", str(warehouse.root), "media", "frames", "--limit", "5"])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output
    res = runner.invoke(app, ["-w", str(warehouse.root), "media", "disjoint"])
    assert res.exit_code == 1 and "imgAAAAAAAA_20000" in res.output


def test_hostile_clip_id_is_recorded_not_used(warehouse):
    from m2ugen_data.vision.media_stage import process_clip

    for kind in ("image", "video"):
        row = process_clip(warehouse, kind, "../../etc/passwd_0")
        assert (row["status"], row["reason"], row["path"]) == ("failed", "invalid_id", None)
    assert not (warehouse.root / "media").exists()


def test_render_synth_videos_muxes_the_clip_audio(warehouse):
    from m2ugen_data.vision.synth_video import plan_video, render_synth_videos

    clip_id = "synAAAAAAAA_0"
    write_flac(warehouse.media_path("audio", clip_id, "flac"), np.zeros(16000 * 3, dtype=np.float32), 16000)
    rows = render_synth_videos(warehouse, [clip_id], duration_s=3.0)
    assert rows[0]["scene"] == plan_video(clip_id).scene == plan_video(clip_id, duration_s=3.0).scene
    with av.open(str(warehouse.abspath(rows[0]["video_path"]))) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
        assert abs(float(c.duration / av.time_base) - 3.0) < 0.2
