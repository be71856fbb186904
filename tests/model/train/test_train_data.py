"""Trainer data stream: discovery, bad input (counted skips, never a hang), safe members, exact positions."""

from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path

import pytest

from m2ugen_model.train.data import Position, ShardStream, StreamSpec, discover_shards, stage_mixture
from m2ugen_model.train.errors import TrainError
from m2ugen_model.train.media import MediaSpec
from train_fixtures import tiny_tokenizer, write_mucaps, write_muedit

MEDIA = MediaSpec(audio_rate=8000, audio_seconds=0.25)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wh")
    write_mucaps(root, 8, 2)
    write_muedit(root, 4, 2)
    return root


def spec(**kw) -> StreamSpec:
    base = dict(stage=1, batch_size=2, max_len=256, truncate=False, media=MEDIA, shuffle_buffer=4, pool_batches=2)
    return StreamSpec(**{**base, **kw})


def take(stream: ShardStream, n: int) -> list[dict]:
    return list(itertools.islice(iter(stream), n))


def test_discovery_warehouse_dirs_and_braces(wh: Path):
    found = discover_shards([str(wh)])
    assert sorted(found) == ["mucaps", "muedit"] and len(found["mucaps"]) == 4 and len(found["muedit"]) == 2
    assert discover_shards([str(wh / "shards")]) == found
    braced = discover_shards([str(wh / "shards/mucaps/mucaps-{000000..000001}.tar")])
    assert braced == {"mucaps": found["mucaps"][:2]}
    extra = discover_shards([str(wh)], [f"alpaca={wh}/shards/muedit/muedit-000000.tar"])
    assert extra["alpaca"] == found["muedit"][:1]


def test_no_shards_is_one_line_error(tmp_path: Path):
    with pytest.raises(TrainError) as exc:
        discover_shards([str(tmp_path)])
    assert "no shards found" in str(exc.value) and "\n" not in str(exc.value)


def test_stage_mixture_keeps_present_datasets(wh: Path):
    found = discover_shards([str(wh)])
    assert [s.name for s in stage_mixture(1, found)] == ["mucaps"]
    assert [s.name for s in stage_mixture(3, found)] == ["muedit"]
    with pytest.raises(TrainError, match="stage 3 needs"):
        stage_mixture(3, {"mucaps": found["mucaps"]})


def test_batches_mask_prompt_and_carry_audio(wh: Path, tok):
    srcs = stage_mixture(3, discover_shards([str(wh)]))
    batch = take(ShardStream(srcs, spec(stage=3), tok), 1)[0]
    labels, ids = batch["labels"], batch["input_ids"]
    aud = tok.convert_tokens_to_ids("[AUD0]")
    for row in range(2):
        answer = (labels[row] != -100).nonzero().flatten()
        assert answer.numel() > 0 and int(answer[0]) > 10  # the prompt (template + instruction) is masked
        assert aud in ids[row].tolist() and aud in labels[row].tolist()
    rows, audio = batch["audio_media"]
    assert rows == [0, 1] and tuple(audio.shape) == (2, MEDIA.audio_samples)
    assert batch["target_captions"][0] == [0, 1]


def _bad_shards(root: Path) -> None:
    """An empty shard, a corrupt shard, a sample without its audio, a hostile member name, an over-long text."""
    d = root / "shards" / "mucaps"
    write_mucaps(root, 4, 4, dataset_dir=d)
    (d / "mucaps-000001.tar").write_bytes(b"")
    (d / "mucaps-000002.tar").write_bytes(b"not a tar file at all" * 100)
    good = (d / "mucaps-000000.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(good)) as src, tarfile.open(d / "mucaps-000003.tar", "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name.startswith("TESTclip000") and m.name.endswith(".flac"):
                continue  # sample 0 loses its audio
            if m.name.startswith("TESTclip001"):
                m.name = "../" + m.name  # traversal attempt
            if m.name.startswith("TESTclip002") and m.name.endswith(".json"):
                data = data.replace(b'"caption":"', b'"caption":"' + b"very long words " * 200)
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))


def test_bad_input_is_skipped_and_counted(tmp_path: Path, tok):
    _bad_shards(tmp_path)
    found = discover_shards([str(tmp_path)])
    srcs = [s for s in stage_mixture(1, found)]
    stream = ShardStream(srcs, spec(resample=False, shuffle_buffer=1), tok)
    batches = take(stream, 6)
    keys = {k for b in batches for k in b["keys"]}
    skips = batches[-1]["skips"]
    assert skips.get("missing_audio", 0) >= 1
    assert skips.get("unsafe_member", 0) >= 1
    assert skips.get("too_long", 0) >= 1
    assert skips.get("corrupt_shard", 0) >= 1
    assert keys <= {f"TESTclip00{i}_{1000 * i}" for i in range(4)}


def test_truncate_keeps_long_samples(tmp_path: Path, tok):
    _bad_shards(tmp_path)
    srcs = stage_mixture(1, {"mucaps": [str(tmp_path / "shards/mucaps/mucaps-000003.tar")]})
    batch = take(ShardStream(srcs, spec(truncate=True, batch_size=2, pool_batches=1), tok), 1)[0]
    assert "TESTclip002_2000" in batch["keys"] and batch["input_ids"].shape[1] == 256


def test_only_bad_shards_raise_instead_of_hanging(tmp_path: Path, tok):
    d = tmp_path / "shards" / "mucaps"
    d.mkdir(parents=True)
    (d / "mucaps-000000.tar").write_bytes(b"")
    (d / "mucaps-000001.tar").write_bytes(b"\x00garbage" * 64)
    srcs = stage_mixture(1, discover_shards([str(tmp_path)]))
    with pytest.raises(TrainError, match="no readable samples"):
        take(ShardStream(srcs, spec(), tok), 1)


def test_ranks_read_disjoint_shards(wh: Path, tok):
    """Within an epoch (2 shards of 2 samples per rank here) ranks share no sample."""
    srcs = stage_mixture(1, discover_shards([str(wh)]))
    seen = [{k for b in take(ShardStream(srcs, spec(rank=r, world=2, resample=False, shuffle_buffer=1), tok), 2) for k in b["keys"]}
            for r in range(2)]
    assert seen[0] and seen[1] and not seen[0] & seen[1]


@pytest.mark.parametrize("consumed", [1, 3, 4])
def test_position_resumes_the_same_batches(wh: Path, tok, consumed: int):
    """Stopping after any batch and restarting from the recorded position gives the same next batches."""
    srcs = stage_mixture(1, discover_shards([str(wh)]))
    sp = spec(num_workers=0)
    straight = take(ShardStream(srcs, sp, tok), consumed + 3)
    pos = Position()
    for b in straight[:consumed]:
        pos.advance(b["meta"])
    pos = Position.from_state(pos.state_dict())
    resumed = take(ShardStream(srcs, sp, tok, start=pos), 3)
    assert [b["keys"] for b in resumed] == [b["keys"] for b in straight[consumed:]]
    assert all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(resumed, straight[consumed:]))
