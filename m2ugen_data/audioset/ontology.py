"""The AudioSet ontology: label ids (mids), their names, and the tree under each label.

Selection asks "is this label under Music?" and captions ask "what is /m/042v_gx called?", so the tree is
loaded once into plain dicts and subtrees are computed on demand and cached. A copy of the official ontology
ships with the package (data/ontology.json, CC BY-SA 4.0) so nothing needs the network by default.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from m2ugen_data.errors import M2UGenError

MUSIC = "/m/04rlf"
INSTRUMENT = "/m/04szw"  # Musical instrument
GENRE = "/m/0kpv1t"  # Music genre
MOOD = "/t/dd00030"  # Music mood
SPEECH = "/m/09x0r"


class OntologyError(M2UGenError):
    """The ontology file is missing, not JSON, or not an AudioSet ontology."""


@dataclass(frozen=True)
class Label:
    id: str
    name: str
    child_ids: tuple[str, ...]
    restrictions: tuple[str, ...]  # "abstract" (never used as a segment label), "blacklist" (not rated)


@dataclass(frozen=True, eq=False)
class Ontology:
    labels: dict[str, Label]
    _cache: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def name(self, mid: str) -> str:
        """Display name of a label; an unknown id is returned unchanged (lists may be newer than the tree)."""
        label = self.labels.get(mid)
        return label.name if label else mid

    def names(self, mids: Iterable[str]) -> list[str]:
        return [self.name(m) for m in mids]

    def descendants(self, mid: str, *, include_self: bool = True) -> frozenset[str]:
        """Every label in the subtree rooted at ``mid`` (the tree is a DAG: some labels have two parents)."""
        if mid not in self.labels:
            raise OntologyError(f"unknown AudioSet label {mid!r}")
        if mid not in self._cache:
            seen: set[str] = set()
            stack = [mid]
            while stack:
                cur = stack.pop()
                if cur in seen:
                    continue
                seen.add(cur)
                stack.extend(self.labels[cur].child_ids if cur in self.labels else ())
            self._cache[mid] = frozenset(seen)
        sub = self._cache[mid]
        return sub if include_self else sub - {mid}

    def mid(self, name_or_mid: str) -> str:
        """The id of a label given as an id or a display name (any case): ``"Speech"`` -> ``/m/09x0r``."""
        if name_or_mid in self.labels:
            return name_or_mid
        wanted = name_or_mid.strip().casefold()
        hits = [label.id for label in self.labels.values() if label.name.casefold() == wanted]
        if len(hits) != 1:
            raise OntologyError(f"no single AudioSet label named {name_or_mid!r}" + (f" ({hits})" if hits else ""))
        return hits[0]

    def is_under(self, mid: str, root: str) -> bool:
        return mid in self.descendants(root)

    def is_abstract(self, mid: str) -> bool:
        label = self.labels.get(mid)
        return bool(label and "abstract" in label.restrictions)


def load_ontology(path_or_url: str | Path | None = None, *, cache_dir: Path | None = None) -> Ontology:
    """The bundled ontology (``None``), a local file, or a URL fetched once into ``cache_dir``."""
    if path_or_url is None:
        return _bundled()
    from m2ugen_data.audioset.sources import resolve_source

    return _parse(resolve_source(path_or_url, cache_dir))


@functools.cache
def _bundled() -> Ontology:
    ref = resources.files("m2ugen_data.audioset") / "data" / "ontology.json"
    with resources.as_file(ref) as path:
        return _parse(path)


def _parse(path: Path) -> Ontology:
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OntologyError(f"cannot read AudioSet ontology {path}: {e}") from e
    if not isinstance(items, list) or not items:
        raise OntologyError(f"{path}: expected a JSON list of labels")
    labels: dict[str, Label] = {}
    for i, item in enumerate(items):
        try:
            label = Label(
                id=str(item["id"]),
                name=str(item["name"]),
                child_ids=tuple(str(c) for c in item.get("child_ids", ())),
                restrictions=tuple(str(r) for r in item.get("restrictions", ())),
            )
        except (KeyError, TypeError) as e:
            raise OntologyError(f"{path}: entry {i} lacks id/name ({e})") from e
        labels[label.id] = label
    for root in (MUSIC, INSTRUMENT, GENRE, MOOD):
        if root not in labels:
            raise OntologyError(f"{path}: not an AudioSet ontology (no {root})")
    return Ontology(labels)
