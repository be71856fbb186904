"""The MU-LLaMA captioner: the paper's music question-answering model asked the reference question.

The model (MERT encoder + LLaMA-2 with the understanding adapter) lives in ``m2ugen_model``; this module
only loads it through that package's API with weights from a local directory and feeds it decoded audio.
``m2ugen_model`` is imported when this backend is chosen, so the grounded default never pays for torch
model code, and a missing or older model package is a one-line error instead of an ImportError trace.

API used (``m2ugen_model.mu_llama``)::

    captioner = load_captioner(model_dir, device=..., question=...)
    texts = captioner(list_of_mono_float_arrays, sample_rate)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from m2ugen_data import defaults
from m2ugen_data.audio_io import load_audio
from m2ugen_data.captions import CaptionItem
from m2ugen_data.errors import M2UGenError, MissingDependencyError

QUESTION = "Describe the music in detail including details such as instruments used, tempo and mood of the song"
SAMPLE_RATE = 24000  # MERT's input rate: decode once at the rate the encoder wants


def load_mu_llama(
    model_dir: Path, device: str, question: str, max_new_tokens: int
) -> Callable[[Sequence[Any], int], list[str]]:
    """Load MU-LLaMA through ``m2ugen_model``, or explain which piece is missing."""
    try:
        from m2ugen_model import mu_llama
    except ImportError as e:
        raise MissingDependencyError(
            f"the mu-llama caption backend needs the m2ugen_model package (pip install -e . installs it): {e}"
        ) from e
    loader = getattr(mu_llama, "load_captioner", None)
    if loader is None:
        raise MissingDependencyError(
            "m2ugen_model.mu_llama has no load_captioner(): the installed m2ugen_model is older than this pipeline; "
            "reinstall both from one checkout"
        )
    try:
        return loader(model_dir, device=device, question=question, max_new_tokens=max_new_tokens)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise M2UGenError(f"cannot load MU-LLaMA from {model_dir}: {str(e).splitlines()[0]}") from e


class MuLlamaCaptioner:
    backend = "mu-llama"

    def __init__(
        self,
        model_dir: Path | str | None = None,
        device: str = defaults.TEXT_DEVICE,  # auto: the GPU when there is one (a 7B model in fp32 on CPU crawls)
        question: str = QUESTION,
        max_new_tokens: int = 256,
    ) -> None:
        if model_dir is None:
            raise M2UGenError("the mu-llama caption backend needs --model-dir (a local directory with its weights)")
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise M2UGenError(f"mu-llama model directory {self.model_dir} does not exist")
        self.device = device
        self.question = question
        self.max_new_tokens = max_new_tokens
        self.model = f"mu-llama:{self.model_dir.name}"
        self._captioner: Callable[[Sequence[Any], int], list[str]] | None = None

    def prompt_hash(self, item: CaptionItem) -> str:
        key = f"{self.backend}\x1f{self.model}\x1f{self.question}\x1f{self.max_new_tokens}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def caption_batch(self, items: Sequence[CaptionItem]) -> list[str]:
        audios = []
        for item in items:  # decode first: a bad file fails before the model is loaded or run
            if item.audio_path is None:
                raise M2UGenError(f"{item.item_id}: no downloaded audio to caption")
            # bounded like analysis: an over-cap file is refused from its header, never decoded whole
            audios.append(load_audio(item.audio_path, sr=SAMPLE_RATE, max_duration_s=defaults.MAX_AUDIO_S)[0])
        if self._captioner is None:
            from m2ugen_data.devices import torch_device

            self._captioner = load_mu_llama(self.model_dir, torch_device(self.device), self.question, self.max_new_tokens)
        return [str(t).strip() for t in self._captioner(audios, SAMPLE_RATE)]

    def evidence(self, item: CaptionItem) -> None:
        """A listening model's claims cannot be traced to a measurement."""
        return None
