"""Run a Typer app so that an option value out of its range is one line naming the option and the limit.

Typer checks ranges (``min``/``max``) while parsing, and click reports a bad value with a usage block and a
hint around it; the model's front doors refuse bad input in one line, as they refuse a bad file. Every other
click error (no command given, unknown option) keeps click's usual report.
"""

from __future__ import annotations

import sys

import typer

# click's base error, from wherever this Typer takes click (newer Typers vendor it): BadParameter derives from it.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def run_app(app: typer.Typer, prog_name: str) -> None:
    """Run ``app`` and exit with its status; a bad option value prints ``error: <what and the limit>``."""
    try:
        code = app(prog_name=prog_name, standalone_mode=False)
    except typer.BadParameter as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except _CLICK_ERROR as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
