"""Load the project's code as it was at a git revision: the "before" of a before/after benchmark, measured in
the same run, on the same data, as the current code. One module (``module_at``) or a whole package tree
(``tree_at``, for code whose modules import each other)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def module_at(rev: str, relpath: str, scratch: Path) -> ModuleType:
    """``relpath`` (e.g. ``m2ugen_data/shards/tar_writer.py``) at ``rev``, imported from a copy in ``scratch``."""
    code = subprocess.run(
        ["git", "show", f"{rev}:{relpath}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    safe_rev = "".join(c if c.isalnum() else "_" for c in rev)
    path = scratch / f"{Path(relpath).stem}_at_{safe_rev}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def tree_at(rev: str, path: str, scratch: Path) -> Path:
    """A directory holding ``path`` (e.g. ``m2ugen_data``) as it was at ``rev``; put it first on ``sys.path``
    in a fresh process, before anything imports the package, to run that revision's code."""
    safe_rev = "".join(c if c.isalnum() else "_" for c in rev)
    out = scratch / f"tree_at_{safe_rev}"
    if not out.is_dir():
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev, path], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out
