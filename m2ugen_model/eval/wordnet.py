"""WordNet 3.0 for METEOR, offline: nltk's own data when present, else Debian's ``wordnet-base`` files.

nltk's METEOR matches synonyms through WordNet, and nltk downloads its corpora from its own site at run time,
which an offline cluster (and this project's machines) cannot reach. The Princeton WordNet 3.0 database that
nltk packages is the same one Debian ships as ``wordnet-base`` (+ ``wordnet-sense-index``), in
``/usr/share/wordnet``, minus one file, ``lexnames`` (the fixed table of the 45 lexicographer files, from
WordNet 3.0's ``lexnames(5WN)``), which nltk's reader needs. We lay the Debian files out as an nltk corpus
under ``$M2UGEN_CACHE/nltk_data/corpora/wordnet`` (copies, ~35 MB: nltk's sandbox refuses links, + that table) and register the cache root with
nltk, whose path sandbox only reads under its data roots. ``$M2UGEN_WORDNET_DIR`` points at any other
WordNet 3.0 ``dict`` directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from pathlib import Path

DEBIAN_DIR = Path("/usr/share/wordnet")
NEEDED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj", "index.adv")
INSTALL_HINT = "apt-get install wordnet-base wordnet-sense-index (or set M2UGEN_WORDNET_DIR to a WordNet 3.0 dict dir)"

# WordNet 3.0 lexnames(5WN): file number, lexicographer file name, syntactic category (1 n, 2 v, 3 a, 4 r).
_LEXNAMES = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1", "noun.artifact 1",
    "noun.attribute 1", "noun.body 1", "noun.cognition 1", "noun.communication 1", "noun.event 1",
    "noun.feeling 1", "noun.food 1", "noun.group 1", "noun.location 1", "noun.motive 1", "noun.object 1",
    "noun.person 1", "noun.phenomenon 1", "noun.plant 1", "noun.possession 1", "noun.process 1",
    "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2", "verb.competition 2",
    "verb.consumption 2", "verb.contact 2", "verb.creation 2", "verb.emotion 2", "verb.motion 2",
    "verb.perception 2", "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
)  # fmt: skip


class WordNetMissing(RuntimeError):
    """No WordNet 3.0 database found; the message says how to install one."""


def _cache_root() -> Path:
    return Path(os.environ.get("M2UGEN_CACHE") or Path.home() / ".cache" / "m2ugen") / "nltk_data"


def _same_plain_copy(src: Path, dst: Path) -> bool:
    """A previous run's copy: a plain, singly-linked file of the same size."""
    if dst.is_symlink() or not dst.is_file():
        return False
    st = dst.stat()
    return st.st_nlink == 1 and st.st_size == src.stat().st_size


def _as_nltk_corpus(source: Path) -> Path:
    """``source`` (a WordNet dict dir) laid out as ``<cache>/corpora/wordnet``; returns the cache root."""
    root = _cache_root()
    corpus = root / "corpora" / "wordnet"
    corpus.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        dst = corpus / f.name
        if f.is_file() and not _same_plain_copy(f, dst):
            tmp = corpus / f".{f.name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            shutil.copyfile(f, tmp)  # copies: nltk's path sandbox refuses symlinks and hard links
            os.replace(tmp, dst)
    if not (corpus / "lexnames").exists():
        tmp = corpus / f".lexnames.{os.getpid()}.tmp"
        tmp.write_text("".join(f"{i:02d}\t{name.split()[0]}\t{name.split()[1]}\n" for i, name in enumerate(_LEXNAMES)))
        os.replace(tmp, corpus / "lexnames")
    return root


@functools.cache
def load_wordnet():
    """An nltk ``WordNetCorpusReader`` (what ``meteor_score(wordnet=...)`` takes), from, in order:
    ``$M2UGEN_WORDNET_DIR``, nltk's own ``corpora/wordnet``, Debian's ``/usr/share/wordnet``."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    explicit = os.environ.get("M2UGEN_WORDNET_DIR")
    if not explicit:
        try:
            found = nltk.data.find("corpora/wordnet")
        except LookupError:
            found = None
        if found is not None:
            return WordNetCorpusReader(found, None)
    source = Path(explicit) if explicit else DEBIAN_DIR
    missing = [n for n in NEEDED if not (source / n).is_file()]
    if missing:
        raise WordNetMissing(f"WordNet 3.0 not found in {source} (missing {', '.join(missing)}): {INSTALL_HINT}")
    root = _as_nltk_corpus(source)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():  # "multilingual functions are not available": METEOR uses English only
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)
