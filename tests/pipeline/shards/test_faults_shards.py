"""Reruns of shard writing: a rerun removes the manifest temporary a killed ``shards write`` left, and the trainer
skips (with a warning) shard files the warehouse's shards manifest does not vouch for."""

from __future__ import annotations

import logging
import subprocess
import sys

from m2ugen_data.atomic import HOST
from m2ugen_data.shards.build import write_dataset_shards
from m2ugen_data.shards.samples import mucaps_sample
from m2ugen_model.train.data import discover_shards
from train_fixtures import _clip_row, _flac


def _samples(root, n: int):
    for i in range(n):
        cid = f"TESTclip{i:03d}_0"
        yield mucaps_sample(audio=_flac(root / "src" / f"{cid}.flac", 440.0), clip=_clip_row(cid), segment=None,
                            features={"analyser_version": "test"}, caption={"text": "a tone.", "backend": "test"})


def test_a_rerun_removes_the_manifest_temporary_a_killed_run_left(warehouse, tmp_path):
    """(The removal itself is the warehouse's: ``write_batch`` clears dead writers' temporaries.)"""
    writer = subprocess.Popen([sys.executable, "-c", "pass"])  # a writer that is gone (as if SIGKILLed)
    writer.wait()
    stale = warehouse.manifest_dir("shards") / f".shards-mucaps.parquet.{HOST}~{writer.pid}~0123456789ab.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PAR1 half a manifest batch")  # SIGKILL between the write and the rename
    write_dataset_shards(warehouse, "mucaps", _samples(tmp_path, 2), max_samples=2)
    assert not stale.exists()
    assert [p.name for p in warehouse.manifest_dir("shards").iterdir()] == ["shards-mucaps.parquet"]


def test_the_trainer_skips_shard_files_the_manifest_does_not_vouch_for(warehouse, tmp_path, caplog):
    rows = write_dataset_shards(warehouse, "mucaps", _samples(tmp_path, 6), max_samples=2)
    shards = [warehouse.root / r["path"] for r in rows]
    assert len(shards) == 3
    # a later `shards write` killed midway: one shard replaced (another size), one new shard the manifest lacks
    shards[1].write_bytes(shards[1].read_bytes() + bytes(10240))
    (shards[0].parent / "mucaps-000003.tar").write_bytes(shards[0].read_bytes()[:4096])
    with caplog.at_level(logging.WARNING, logger="m2ugen.train.data"):
        found = discover_shards([str(warehouse.root)])
    assert found == {"mucaps": [str(shards[0]), str(shards[2])]}
    (warning,) = [r.getMessage() for r in caplog.records if "shards manifest" in r.getMessage()]
    assert "2 shard file(s)" in warning and "mucaps-000001.tar" in warning and "mucaps-000003.tar" in warning
