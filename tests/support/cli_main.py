"""Run ``m2ugen-data`` in-process as a user does: through ``main`` (errors become one line on stderr and exit
code 2), with a wide terminal so table rows are not wrapped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from m2ugen_data.cli.root import main


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, root: Path, *args: str
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``m2ugen-data --warehouse root *args``."""
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(sys, "argv", ["m2ugen-data", "--warehouse", str(root), *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
