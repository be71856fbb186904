"""Music captioners by name: ``make_captioner(backend, **options)``.

Kept apart from the package's ``__init__`` (the interface every captioner implements) so the interface never
imports the captioners that import it; each is imported only when asked for (mu-llama pulls in torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from m2ugen_data.captions import Captioner
from m2ugen_data.errors import M2UGenError


def _grounded(**_: Any) -> Captioner:
    from m2ugen_data.captions.grounded import GroundedCaptioner

    return GroundedCaptioner()


def _mu_llama(**opts: Any) -> Captioner:
    from m2ugen_data.captions.mu_llama import MuLlamaCaptioner

    return MuLlamaCaptioner(**opts)


CAPTIONERS: dict[str, Callable[..., Captioner]] = {"grounded": _grounded, "mu-llama": _mu_llama}


def make_captioner(backend: str, **opts: Any) -> Captioner:
    """Build the captioner registered as ``backend``; options go to its constructor."""
    try:
        factory = CAPTIONERS[backend]
    except KeyError:
        raise M2UGenError(f"unknown caption backend {backend!r}; known: {', '.join(CAPTIONERS)}") from None
    return factory(**opts)
