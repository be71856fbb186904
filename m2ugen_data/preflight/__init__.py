"""Checks that run before any model is loaded: is the directory the model it claims to be, is it whole, can
the installed libraries run it. Each check returns ``Finding`` records instead of raising, so one report (the
``m2ugen-data check`` table) can list every problem at once, while a loader raises the first one as a
one-line error (``raise_first``) before it touches GPU memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from m2ugen_data.errors import M2UGenError


@dataclass(frozen=True)
class Finding:
    """One problem: what was checked, where, what is wrong, and what to do about it."""

    what: str  # e.g. "dialogue LLM", "BLIP", "vllm"
    path: str  # the file, directory or package the problem is in
    problem: str
    fix: str

    def line(self) -> str:
        return f"{self.what}: {self.problem} ({self.path}); {self.fix}"


class PreflightError(M2UGenError):
    """A model that cannot load here, said in one line before anything is loaded."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.line())
        self.finding = finding


def raise_first(findings: Iterable[Finding]) -> None:
    """Raise the first finding as a one-line ``PreflightError``; do nothing when there is none."""
    for f in findings:
        raise PreflightError(f)
