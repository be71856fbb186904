"""Where things are, for tests in any folder: the repository, the test data, these support scripts (some
run as subprocesses by path) and the team's shared folder beside the checkout (real AudioSet lists)."""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
REPO = TESTS.parent
DATA = TESTS / "data"
SHARED = REPO.parent / "shared"
AUDIOSET_DIR = SHARED / "audioset"
