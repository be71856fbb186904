"""Music disjointness: the music of MUImage and MUVideo must not appear in MUCaps or MUEdit.

Pools are disjoint by a hash of the YouTube ID at selection time, but pools are not what ends up in a
dataset: pairs, retries or a hand-edited segment list can bring a clip in twice. So the check looks at what
each dataset actually uses, and counts a match at four levels: the same clip, another section of the same
video (the same song), byte-identical audio (the same upload under two IDs), and the same near-duplicate
group by sound (``duplicates``: re-encoded, shifted or re-mastered uploads), so pools are disjoint by group.

``check_dataset_music`` is what the ``build-muimage``/``build-muvideo`` flows run before writing shards: the
keys about to be sharded against the other datasets' manifests *and* the keys already in their shards (a
clip moved to another pool after its shards were written is still in those shards).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from m2ugen_data.clean.gate import load_gate
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import ytid_of
from m2ugen_data.shards.read import iter_shard_keys, shard_paths
from m2ugen_data.warehouse import Warehouse

DATASETS = ("mucaps", "muedit", "muimage", "muvideo")
VISUAL = ("muimage", "muvideo")
AUDIO_ONLY = ("mucaps", "muedit")


class MusicOverlapError(M2UGenError):
    """MUImage/MUVideo music found in another dataset: its shards are not written unless overlap is allowed."""


def music_ids_from_keys(dataset: str, keys: Iterable[str]) -> set[str]:
    """Music clip ids named by shard sample keys (``src__tgt`` for MUEdit, the clip id otherwise)."""
    out: set[str] = set()
    for k in keys:
        out.update(k.split("__") if dataset == "muedit" else [k])
    return out


def music_ids_from_manifests(wh: Warehouse) -> dict[str, set[str]]:
    """What each dataset uses according to the manifests: MUCaps its pool; MUEdit its pool and every pair
    member; MUImage/MUVideo the clips with an ok frame/clip."""
    con = wh.connect()

    def ids(sql: str) -> set[str]:
        return {r[0] for r in con.execute(sql).fetchall()}

    return {
        "mucaps": ids("SELECT clip_id FROM segments_latest WHERE pool = 'mucaps'"),
        "muedit": ids(
            "SELECT clip_id FROM segments_latest WHERE pool = 'muedit' "
            "UNION SELECT src_id FROM pairs_latest UNION SELECT tgt_id FROM pairs_latest"
        ),
        "muimage": ids("SELECT clip_id FROM visual_media_latest WHERE kind = 'image' AND status = 'ok'"),
        "muvideo": ids("SELECT clip_id FROM visual_media_latest WHERE kind = 'video' AND status = 'ok'"),
    }


def audio_digests(wh: Warehouse) -> dict[str, str]:
    con = wh.connect()
    rows = con.execute("SELECT clip_id, sha256 FROM clips_latest WHERE status = 'ok' AND sha256 IS NOT NULL")
    return dict(rows.fetchall())


def near_duplicate_groups(wh: Warehouse) -> dict[str, str]:
    """clip -> its near-duplicate group (``duplicates``; clips in no group are absent)."""
    if not wh.manifest_files("duplicates"):
        return {}
    return dict(wh.connect().execute("SELECT clip_id, group_id FROM duplicates_latest").fetchall())


def music_overlaps(
    ids_by_dataset: Mapping[str, Iterable[str]], *, digests: Mapping[str, str] | None = None,
    checked: Iterable[str] = VISUAL, groups: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """Every (checked dataset, clip) whose music also appears in another dataset, with how it matched.

    Matches are reported once per pair of clips, the strongest level first (clip, video, audio, sound).
    """
    digests, groups = digests or {}, groups or {}
    levels = ("clip", "video", "audio", "sound")
    index: dict[str, dict[str, list[tuple[str, str]]]] = {level: defaultdict(list) for level in levels}
    for ds, ids in ids_by_dataset.items():
        for cid in ids:
            index["clip"][cid].append((ds, cid))
            index["video"][ytid_of(cid)].append((ds, cid))
            if cid in digests:
                index["audio"][digests[cid]].append((ds, cid))
            if cid in groups:
                index["sound"][groups[cid]].append((ds, cid))
    found: dict[tuple[str, str, str, str], str] = {}
    for ds in checked:
        for cid in ids_by_dataset.get(ds, ()):
            keys = {"clip": cid, "video": ytid_of(cid), "audio": digests.get(cid), "sound": groups.get(cid)}
            for level in levels:
                if keys[level] is None:
                    continue
                for other_ds, other in index[level][keys[level]]:
                    if other_ds != ds:
                        found.setdefault((ds, cid, other_ds, other), level)
    return [
        {"dataset": d, "clip_id": c, "other_dataset": od, "other_clip_id": oc, "match": m}
        for (d, c, od, oc), m in sorted(found.items())
    ]


def shard_music_ids(wh: Warehouse, dataset: str) -> set[str]:
    """Music clip ids in the shards the manifest lists for ``dataset`` (keys from tar headers only)."""
    keys: list[str] = []
    for path in shard_paths(wh, dataset):
        if path.is_file():
            keys.extend(iter_shard_keys(path))
    return music_ids_from_keys(dataset, keys)


@dataclass
class DisjointReport:
    dataset: str
    checked: int  # music clips of ``dataset`` compared
    against: dict[str, int]  # other dataset -> music clips it uses (manifests and shards)
    overlaps: list[dict[str, str]] = field(default_factory=list)

    @property
    def by_match(self) -> dict[str, int]:
        return dict(Counter(o["match"] for o in self.overlaps))

    def message(self, limit: int = 3) -> str:
        """One line for an error or a log: how many, where, and the first few."""
        first = "; ".join(f"{o['clip_id']} = {o['other_dataset']} {o['other_clip_id']} ({o['match']})" for o in self.overlaps[:limit])
        others = ", ".join(sorted({o["other_dataset"] for o in self.overlaps}))
        return f"{self.dataset}: {len(self.overlaps)} music overlap(s) with {others}: {first}"


def check_dataset_music(
    wh: Warehouse, dataset: str, candidates: Iterable[str], against: Iterable[str] = AUDIO_ONLY
) -> DisjointReport:
    """Compare ``candidates`` (the music clip ids ``dataset`` is about to use) with what each dataset of
    ``against`` uses by its manifests and by its existing shards, at the clip, video, audio and sound levels."""
    manifests = music_ids_from_manifests(wh)
    gate = load_gate(wh, dataset)
    unused = gate.dropped | set(gate.contaminated)  # no dataset uses these (a group keeps its canonical clip)
    ids: dict[str, set[str]] = {dataset: set(candidates) - unused}
    for other in against:
        ids[other] = (manifests.get(other, set()) - unused) | shard_music_ids(wh, other)
    overlaps = music_overlaps(ids, digests=audio_digests(wh), checked=(dataset,), groups=near_duplicate_groups(wh))
    return DisjointReport(dataset, len(ids[dataset]), {o: len(ids[o]) for o in against}, overlaps)
