"""Any OpenAI-compatible server (``vllm serve mosaicml/mpt-7b-chat``, ``transformers serve``, ...).

Prompts go to the legacy ``/completions`` endpoint as rendered text (ChatML for MPT, or the chat template of a
local copy of the model's tokenizer, ``tokenizer``), so the server applies no template of its own and every
backend sends the model the same prompt. Requests run concurrently (bounded by a semaphore, so a large batch
cannot flood the server); a timeout, a 5xx/429 or a body that is not the expected JSON is retried with
exponential backoff, and after the last retry the request comes back as a failed completion: one bad request
never fails the batch.

vLLM's server takes sampling fields the OpenAI API lacks: the reference's ``top_k`` and
``skip_special_tokens=false`` (so a leaked ``<|im_start|>`` reaches the validator). They are sent by default;
a server that refuses them with a 4xx (``transformers serve`` validates the body strictly) gets the request
once more without them, and if that passes they are dropped for the rest of the run, said once in the log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request
from m2ugen_data.dialogues.chat_format import CHATML, PromptFormat, choose_format, load_tokenizer

API_KEY_ENV = ("M2UGEN_OPENAI_API_KEY", "OPENAI_API_KEY")
log = logging.getLogger(__name__)


def api_key_from_env() -> str | None:
    for var in API_KEY_ENV:
        if os.environ.get(var):
            return os.environ[var]
    return None


@dataclass(frozen=True)
class OpenAIBackend:
    model: str
    base_url: str = "http://127.0.0.1:8000/v1"
    params: GenerationParams = GenerationParams()
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    vllm_extras: bool = True  # top_k and skip_special_tokens; dropped after one refusal (module docstring)
    api_key: str | None = None  # default: $M2UGEN_OPENAI_API_KEY, then $OPENAI_API_KEY
    tokenizer: str | None = None  # a local directory with the model's tokenizer: prompts by its chat template
    prompt_format_name: str = "auto"  # auto | chatml | chat-template (chat_format.choose_format)
    name: str = "openai"
    prompt_format: PromptFormat = field(init=False, default=CHATML)
    _refused: set[str] = field(init=False, default_factory=set, compare=False)  # {"extras"} once refused

    def __post_init__(self) -> None:
        tok = load_tokenizer(Path(self.tokenizer)) if self.tokenizer else None
        fmt = choose_format(self.prompt_format_name, tok, Path(self.tokenizer) if self.tokenizer else None)
        object.__setattr__(self, "prompt_format", fmt)
        if fmt.name != "chatml":
            object.__setattr__(self, "params", replace(self.params, stop=fmt.stop))

    def config_key(self) -> str:
        return self.params.key()

    def extras(self) -> dict:
        """vLLM's sampling fields beyond the OpenAI API, unless the server refused them."""
        if not self.vllm_extras or self._refused:
            return {}
        return {"top_k": self.params.top_k if self.params.top_k > 0 else -1, "skip_special_tokens": False}

    def _body(self, r: Request, extras: dict | None = None) -> dict:
        p = self.params
        body = {
            "model": self.model,
            "prompt": r.prompt,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": r.seed,
            "stop": list(p.stop),
        }
        return body | (extras or {})

    async def _post(self, client: httpx.AsyncClient, r: Request) -> httpx.Response:
        """POST one request; a 4xx to a body with vLLM's extras is tried once without them."""
        extras = self.extras()
        resp = await client.post("/completions", json=self._body(r, extras))
        if extras and 400 <= resp.status_code < 500 and resp.status_code != 429:
            plain = await client.post("/completions", json=self._body(r))
            if plain.status_code < 400 and not self._refused:
                self._refused.add("extras")
                log.warning(
                    "%s refused vLLM's top_k/skip_special_tokens (HTTP %d); sending requests without them: "
                    "sampling then uses the server's top_k, and special tokens may be stripped before validation",
                    self.base_url, resp.status_code,
                )
            return plain
        return resp

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, r: Request) -> Completion:
        error = "unknown"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))
            async with sem:
                try:
                    resp = await self._post(client, r)
                except httpx.TimeoutException:
                    error = "timeout"
                    continue
                except httpx.TransportError:
                    error = "connection"
                    continue
            if resp.status_code >= 500 or resp.status_code == 429:
                error = f"http_{resp.status_code}"
                continue
            if resp.status_code >= 400:  # our request is wrong: retrying cannot help
                return Completion(text=None, error=f"http_{resp.status_code}")
            try:
                data = resp.json()
                text = data["choices"][0]["text"]
                tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                error = "malformed_json"
                continue
            return Completion(text=text, tokens=tokens)
        return Completion(text=None, error=error)

    async def acomplete(self, requests: Sequence[Request]) -> list[Completion]:
        key = self.api_key or api_key_from_env()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        sem = asyncio.Semaphore(max(1, self.concurrency))
        async with httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout_s, limits=limits
        ) as client:
            return list(await asyncio.gather(*(self._one(client, sem, r) for r in requests)))

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acomplete(requests))
        # Called from inside an event loop (an async flow): run ours on a worker thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.acomplete(requests)).result()
