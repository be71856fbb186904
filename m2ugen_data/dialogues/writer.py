"""Write two-turn dialogues in batches: generate, validate, retry the rejects, record every outcome.

Per batch of samples, both sides of every sample go to the backend in one call; turns that fail validation
(or that the backend could not produce) are asked again with a new seed, up to ``max_attempts``, and a sample
that still fails is written as ``rejected`` with its reasons, so it never reaches a shard but stays visible.
A sample whose latest row is ``ok`` under the same prompt hash (backend, model, sampling settings, both
prompts) is not generated again, and each batch is written on its own, so reruns are cheap and resumable.
A sample rejected under the same prompt hash is not asked again either (the seeds are fixed, so it would
only repeat the rejection and add a row per rerun), unless ``retry_rejected`` or the rejection was the
backend failing (a timeout, a server error: worth another try).

Every turn of every backend also has its claims checked against the measurements (``factcheck``): a
contradicted claim rejects the turn with the claim as the reason (``gpt:contradicted:female voice``) and is
retried like any other rejection; each row stores the verdicts of its final turns and a consistency score.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from m2ugen_data import defaults
from m2ugen_data.claims import WorkClaims, claimed_batches, stage_name
from m2ugen_data.dialogues.backend import Backend, Request
from m2ugen_data.dialogues.prompts import SIDES, build_prompts
from m2ugen_data.dialogues.samples import DialogueSample
from m2ugen_data.dialogues.validate import clean_output, validate_turn
from m2ugen_data.factcheck.policy import DEFAULT_POLICY, FactPolicy, TextCheck, combined_consistency, record_json
from m2ugen_data.factcheck.turns import check_turn
from m2ugen_data.schemas import DIALOGUES
from m2ugen_data.warehouse import Warehouse, utc_now


@dataclass
class DialogueSummary:
    total: int = 0
    cached: int = 0
    rejected_before: int = 0  # rejected under the same prompt by an earlier run: not asked again
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # rejected samples per reason
    attempts: Counter[int] = field(default_factory=Counter)  # generated samples per attempts used
    tokens: int = 0  # generated tokens, all attempts
    gen_seconds: float = 0.0  # time inside the backend
    seconds: float = 0.0
    claimed_elsewhere: int = 0  # to do, but claimed by another live run (claims.py)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.gen_seconds if self.gen_seconds > 0 else 0.0


def prompt_hash(backend: Backend, prompts: dict[str, str]) -> str:
    key = "\x1f".join([backend.name, backend.model, backend.config_key(), *(prompts[s] for s in SIDES)])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def sample_seed(sample: DialogueSample, base_seed: int) -> int:
    digest = hashlib.blake2b(f"{sample.dataset}/{sample.sample_id}".encode(), digest_size=4).digest()
    return (int.from_bytes(digest, "little") + base_seed * 1_000_003) % (2**31 - 1000)


def finished(wh: Warehouse, backend: Backend, retry_rejected: bool = False) -> dict[tuple[str, str], tuple[str, str]]:
    """(dataset, sample_id) -> (status, prompt hash) of samples whose latest row, from this backend, is final:
    accepted, or rejected for what it said (not for a backend failure) unless ``retry_rejected``."""
    name = backend.name.replace("'", "''")
    final = "status = 'ok'" if retry_rejected else (
        "(status = 'ok' OR (status = 'rejected' AND coalesce(array_to_string(reasons, ' '), '') NOT LIKE '%backend_error:%'))")
    t = wh.read("dialogues", where=f"{final} AND backend = '{name}'")
    keys = zip(t.column("dataset").to_pylist(), t.column("sample_id").to_pylist(), strict=True)
    return dict(zip(keys, zip(t.column("status").to_pylist(), t.column("prompt_hash").to_pylist()), strict=True))


def _run_batch(
    backend: Backend,
    chunk: Sequence[tuple[DialogueSample, dict[str, str], str]],
    max_attempts: int,
    base_seed: int,
    summary: DialogueSummary,
    policy: FactPolicy | None = DEFAULT_POLICY,
) -> list[dict]:
    texts: dict[tuple[str, str], str] = {}
    reasons: dict[tuple[str, str], list[str]] = {}
    checks: dict[tuple[str, str], TextCheck] = {}
    used: dict[str, int] = {}
    pending = [(s, p, side) for s, p, _ in chunk for side in SIDES]
    for attempt in range(max_attempts):
        if not pending:
            break
        requests = [Request(s, side, p[side], sample_seed(s, base_seed) + attempt) for s, p, side in pending]
        t0 = time.perf_counter()
        completions = backend.complete(requests)
        summary.gen_seconds += time.perf_counter() - t0
        still = []
        for (s, p, side), c in zip(pending, completions, strict=True):
            used[s.sample_id] = attempt + 1
            summary.tokens += c.tokens
            key = (s.sample_id, side)
            if c.error is not None:
                texts.setdefault(key, "")
                reasons[key] = [f"backend_error:{c.error}"]
            else:
                texts[key] = clean_output(c.text or "")
                reasons[key] = validate_turn(side, texts[key], s.diff)
                if policy is not None:
                    checks[key] = check_turn(s, side, texts[key], policy)
                    reasons[key] += [r for r in checks[key].reasons if r not in reasons[key]]
            if reasons[key]:
                still.append((s, p, side))
        pending = still
    now = utc_now()
    rows = []
    for s, _, h in chunk:
        why = [f"{side}:{r}" for side in SIDES for r in reasons[(s.sample_id, side)]]
        checked = {side: checks[(s.sample_id, side)] for side in SIDES if (s.sample_id, side) in checks}
        status = "rejected" if why else "ok"
        summary.attempts[used[s.sample_id]] += 1
        if why:
            summary.rejected += 1
            summary.reasons.update(why)
        else:
            summary.accepted += 1
        rows.append(
            {
                "dataset": s.dataset,
                "sample_id": s.sample_id,
                "input_id": s.input_id,
                "output_id": s.output_id,
                "human": texts.get((s.sample_id, "human")) or None,
                "gpt": texts.get((s.sample_id, "gpt")) or None,
                "input_caption": s.input_caption,
                "output_caption": s.output_caption,
                "backend": backend.name,
                "model": backend.model,
                "prompt_hash": h,
                "status": status,
                "reasons": why,
                "attempts": used[s.sample_id],
                "created_at": now,
                "factcheck": record_json(checked) if checked else None,
                "consistency": combined_consistency(list(checked.values())) if checked else None,
            }
        )
    return rows


def write_dialogues(
    wh: Warehouse,
    samples: Sequence[DialogueSample],
    backend: Backend,
    *,
    batch_size: int = defaults.DIALOGUE_BATCH_SIZE,
    max_attempts: int = defaults.DIALOGUE_MAX_ATTEMPTS,
    base_seed: int = defaults.TEXT_SEED,
    on_progress: Callable[[int, DialogueSummary], None] | None = None,
    retry_rejected: bool = False,
    policy: FactPolicy | None = DEFAULT_POLICY,
) -> DialogueSummary:
    """Generate, validate and record dialogues for ``samples`` not yet answered (or rejected) under the same
    prompt; ``retry_rejected`` asks again for the rejected ones. Claims are checked under ``policy`` (None:
    not checked)."""
    start = time.perf_counter()
    summary = DialogueSummary(total=len(samples))
    claims = WorkClaims(wh.root, stage_name("dialogues", backend.name))  # before the answers are read
    done = finished(wh, backend, retry_rejected)
    fmt = getattr(backend, "prompt_format", None)  # the model's chat format; ChatML when the backend has none
    todo = []
    for s in samples:
        prompts = build_prompts(s, fmt.render) if fmt else build_prompts(s)
        h = prompt_hash(backend, prompts)
        status, previous = done.get((s.dataset, s.sample_id), (None, None))
        if previous != h:
            todo.append((s, prompts, h))
        elif status == "ok":
            summary.cached += 1
        else:
            summary.rejected_before += 1
    if on_progress:
        on_progress(summary.cached + summary.rejected_before, summary)
    for chunk in claimed_batches(claims, todo, lambda t: f"{t[0].dataset}/{t[0].sample_id}", batch_size):
        rows = _run_batch(backend, chunk, max(1, max_attempts), base_seed, summary, policy)
        digest = hashlib.sha1("".join(f"{r['dataset']}/{r['sample_id']}:{r['prompt_hash']};" for r in rows).encode())
        table = pa.Table.from_pylist(rows, schema=DIALOGUES.schema)  # columnar: no per-row checks in conform
        wh.write_batch("dialogues", table, batch_id=f"dlg-{backend.name}-{digest.hexdigest()[:16]}")
        if on_progress:
            on_progress(len(chunk), summary)
    summary.claimed_elsewhere = claims.skipped
    summary.seconds = time.perf_counter() - start
    return summary
