"""In-process generation with transformers: batched ``generate`` with left padding, CPU or one GPU.

Left padding keeps every prompt's last token at the same position, so one ``generate`` call continues all
prompts of a batch; the reference ran MPT one prompt at a time. The model loads with ``from_pretrained``
from a local directory or hub name, exactly as real MPT-7B-chat weights would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request
from m2ugen_data.errors import M2UGenError


@dataclass(frozen=True)
class TransformersBackend:
    model: str  # local directory (or a hub name when the environment allows downloads)
    device: str = "cpu"
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int = 16  # prompts per generate call
    params: GenerationParams = GenerationParams()
    trust_remote_code: bool = False
    name: str = "transformers"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_loaded", None)

    def config_key(self) -> str:
        return self.params.key()

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(
                    self.model, padding_side="left", trust_remote_code=self.trust_remote_code
                )
                dtype = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
                lm = AutoModelForCausalLM.from_pretrained(
                    self.model, dtype=dtype, trust_remote_code=self.trust_remote_code
                ).to(self.device)
            except (OSError, ValueError) as e:
                raise M2UGenError(f"cannot load model {self.model!r}: {str(e).splitlines()[0]}") from e
            lm.eval()
            if tok.pad_token is None:  # MPT/GPT-NeoX tokenizers have none; padding is masked anyway
                tok.pad_token = tok.eos_token
            object.__setattr__(self, "_loaded", (tok, lm))
        return self._loaded

    def _stop_ids(self, tok: Any) -> list[int]:
        ids = [tok.eos_token_id] if tok.eos_token_id is not None else []
        for s in self.params.stop:
            tid = tok.convert_tokens_to_ids(s)
            if isinstance(tid, int) and tid != tok.unk_token_id and tid not in ids:
                ids.append(tid)
        return ids

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        out: list[Completion] = []
        for i in range(0, len(requests), max(1, self.batch_size)):
            out += self._generate(requests[i : i + max(1, self.batch_size)])
        return out

    def _generate(self, batch: Sequence[Request]) -> list[Completion]:
        import torch

        tok, lm = self._load()
        enc = tok([r.prompt for r in batch], return_tensors="pt", padding=True).to(self.device)
        p = self.params
        stop_ids = self._stop_ids(tok)
        # One sampling stream per batch: seeded by the batch's first request, so a retry batch differs.
        torch.manual_seed(batch[0].seed)
        with torch.inference_mode():
            seqs = lm.generate(
                **enc,
                max_new_tokens=p.max_new_tokens,
                do_sample=p.temperature > 0,
                temperature=p.temperature if p.temperature > 0 else None,
                top_p=p.top_p if p.temperature > 0 else None,
                top_k=p.top_k if p.temperature > 0 else None,
                eos_token_id=stop_ids,
                pad_token_id=tok.pad_token_id,
            )
        new = seqs[:, enc["input_ids"].shape[1] :]
        results = []
        for row in new.tolist():
            n, tokens = len(row), len(row)
            for j, t in enumerate(row):
                if t in stop_ids:
                    n, tokens = j, j + 1
                    break
            # Special tokens stay in the text so a leaked "<|im_start|>" reaches the validator.
            results.append(Completion(text=tok.decode(row[:n], skip_special_tokens=False), tokens=tokens))
        return results
