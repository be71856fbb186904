"""SIGTERM or Ctrl-C stops training at the next step boundary with a checkpoint, instead of losing the work.

A cluster scheduler (Slurm, Kubernetes, systemd) asks a job to stop with SIGTERM and kills it a grace period
later. The handler only records the request; the loop checks it after each optimizer step, writes a
checkpoint there and returns, so the wait is bounded by one step plus one checkpoint. A second signal gets
the previous behaviour (immediate death / KeyboardInterrupt) for a user who will not wait.

Under torchrun every rank must stop at the same step (the checkpoint is collective), so the flag is
all-reduced (max) each step. Data-loader workers ignore both signals: a signal sent to the whole process
group must not kill the workers that the last step still needs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Records SIGTERM/SIGINT while installed (main thread only; elsewhere it never fires)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self.uninstall()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    def requested(self, device: torch.device) -> bool:
        """Whether any rank was asked to stop (a collective under torchrun: every rank calls it each step)."""
        if not (dist.is_available() and dist.is_initialized()):
            return self.signum is not None
        flag = torch.tensor([1 if self.signum is not None else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: leave SIGTERM/SIGINT to the main process (which stops the loader)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
