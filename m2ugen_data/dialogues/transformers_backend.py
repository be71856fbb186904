"""In-process generation with transformers: batched ``generate`` with left padding, CPU or one GPU.

Left padding keeps every prompt's last token at the same position, so one ``generate`` call continues all
prompts of a batch; the reference ran MPT one prompt at a time. The model loads with ``from_pretrained``
from a local directory, exactly as real weights would. MPT-7B-chat needs no hub code here: its
``model_type: mpt`` is transformers' own ``MptForCausalLM``, which reads the published weights as they are.

The directory is checked before anything loads (architecture, tokenizer, whole weight files), and the
tokenizer is read at construction to pick the prompt format (``chat_format``), so a wrong model fails in one
line before the samples are even read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request
from m2ugen_data.dialogues.chat_format import CHATML, PromptFormat, prepare_local_model
from m2ugen_data.errors import M2UGenError


@dataclass(frozen=True)
class TransformersBackend:
    model: str  # a local model directory
    device: str = "auto"  # auto: the GPU when there is one
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int = 16  # prompts per generate call
    params: GenerationParams = GenerationParams()
    trust_remote_code: bool = False
    prompt_format_name: str = "auto"  # auto | chatml | chat-template (chat_format.choose_format)
    name: str = "transformers"
    prompt_format: PromptFormat = field(init=False, default=CHATML)  # from the tokenizer, in __post_init__

    def __post_init__(self) -> None:
        tok, fmt, params = prepare_local_model(
            self.model, "transformers", self.prompt_format_name, self.params, self.trust_remote_code
        )
        tok.padding_side = "left"
        object.__setattr__(self, "prompt_format", fmt)
        object.__setattr__(self, "params", params)  # with the template's own end-of-turn tokens
        object.__setattr__(self, "_tok", tok)
        object.__setattr__(self, "_loaded", None)

    def config_key(self) -> str:
        return self.params.key()

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM

            from m2ugen_data.devices import torch_device

            tok = self._tok
            try:
                dtype = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
                lm = AutoModelForCausalLM.from_pretrained(
                    self.model, dtype=dtype, trust_remote_code=self.trust_remote_code
                ).to(torch_device(self.device))
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
        enc = tok([r.prompt for r in batch], return_tensors="pt", padding=True).to(lm.device)
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
                # MPT-7B-chat's config.json says use_cache: false, which would recompute the whole prompt
                # for every new token
                use_cache=True,
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
