"""What a preflight check found: one plain record per problem, and one table for all of them.

Every check (a function per component, in this package or elsewhere: the data pipeline adds its own) returns
a list of ``Finding``; an empty list means the component is ready. ``render`` prints one rich table of all
findings with their fixes, ``exit_code`` is non-zero when any of them blocks a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from rich.console import Console
from rich.table import Table

@dataclass(frozen=True)
class Finding:
    what: str  # the component or package: "LLaMA-2", "MERT", "checkpoint", "transformers", ...
    path: str  # the file, directory or package it is about
    problem: str
    fix: str
    blocking: bool = True  # False: worth knowing, the run can go on

    def line(self) -> str:
        """The one-line form used in errors: path, problem, fix."""
        return f"{self.path}: {self.problem}; {self.fix}" if self.path else f"{self.problem}; {self.fix}"


def guarded(what: str, path: object, fix: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """Run one check; an unexpected exception becomes a blocking finding instead of a traceback, so one broken
    component never hides the others."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - the point is to report whatever broke, in one row
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return [Finding(what, str(path or ""), lines[0] if lines else type(exc).__name__, fix)]


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.blocking]


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if blocking(findings) else 0


def render(findings: list[Finding], ready: list[str], console: Console | None = None,
           title: str = "m2ugen preflight") -> None:
    """One table of what is missing (blocking first), or one line saying that nothing is; ``ready`` names the
    parts checked without a finding."""
    out = console or Console()
    if not findings:
        out.print(f"{title}: nothing missing ({', '.join(ready)})", highlight=False)
        return
    table = Table(title=f"{title}: {len(blocking(findings))} blocking, "
                        f"{len(findings) - len(blocking(findings))} to note", show_lines=True)
    for col in ("", "component", "path", "problem", "fix"):
        table.add_column(col, overflow="fold")
    for f in sorted(findings, key=lambda f: not f.blocking):
        table.add_row("✗" if f.blocking else "!", f.what, f.path, f.problem, f.fix)
    out.print(table)
    if ready:
        out.print(f"ready: {', '.join(ready)}", highlight=False)
