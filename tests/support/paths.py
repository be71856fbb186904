"""Where things are, for tests in any folder: the repository, the test data and these support scripts
(some run as subprocesses by path)."""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
REPO = TESTS.parent
DATA = TESTS / "data"
