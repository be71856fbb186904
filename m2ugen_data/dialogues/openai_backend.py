"""Any OpenAI-compatible server (``vllm serve mosaicml/mpt-7b-chat``, ``transformers serve``, ...).

Prompts go to the legacy ``/completions`` endpoint as raw ChatML text, so the server applies no chat template
of its own and every backend sends the model the same prompt. Requests run concurrently (bounded by a
semaphore, so a large batch cannot flood the server); a timeout, a 5xx/429 or a body that is not the expected
JSON is retried with exponential backoff, and after the last retry the request comes back as a failed
completion: one bad request never fails the batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request

API_KEY_ENV = ("M2UGEN_OPENAI_API_KEY", "OPENAI_API_KEY")


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
    send_top_k: bool = False  # vLLM accepts top_k; strict servers (transformers serve) reject unknown fields
    api_key: str | None = None  # default: $M2UGEN_OPENAI_API_KEY, then $OPENAI_API_KEY
    name: str = "openai"

    def config_key(self) -> str:
        return self.params.key()

    def _body(self, r: Request) -> dict:
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
        if self.send_top_k:
            body["top_k"] = p.top_k
        return body

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, r: Request) -> Completion:
        error = "unknown"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))
            async with sem:
                try:
                    resp = await client.post("/completions", json=self._body(r))
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
