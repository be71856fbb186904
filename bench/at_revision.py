"""Load one of the project's modules as it was at a git revision: the "before" of a before/after benchmark,
measured in the same run, on the same data, as the current code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def module_at(rev: str, relpath: str, scratch: Path) -> ModuleType:
    """``relpath`` (e.g. ``m2ugen_data/analysis/pairs.py``) at ``rev``, imported from a copy in ``scratch``."""
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
