"""Run a console script's ``main`` in this process, as the user's shell would (its error handling included)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_main(main: Callable[[], None], prog: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``prog args`` run through ``main``."""
    monkeypatch.setattr(sys, "argv", [prog, *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err
