"""The one error of inference: what the user got wrong (weights, checkpoint, input, settings), printed by
``m2ugen-infer`` as one line without a traceback. Its own module at the package's root so inference
(``infer/``) and the weights checks (``weights/``) both raise it without importing each other."""

from __future__ import annotations


class InferenceError(Exception):
    """Bad weights, checkpoint, input or settings for inference: printed as one line, no traceback."""


def one_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when it has none)."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
