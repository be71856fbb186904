"""Child processes that cannot outlive the process that started them.

A parent killed with SIGKILL runs no cleanup, so its children must be told by the kernel: on Linux a child
can ask for a signal when its parent exits (``prctl(PR_SET_PDEATHSIG)``, ``die_with_parent``). Two places
need it:

- the analysis pool (``process_pool``): spawn workers set it first thing, so ``kill -9`` of ``analyze`` takes
  the workers with it; the multiprocessing resource tracker then sees its pipe close and exits by itself;
- Prefect's temporary API server (``flows/prefect_api.py``): the demo and ``serve`` without
  ``PREFECT_API_URL`` start it from the main thread as a child that carries the signal.

The kernel sends the signal when the *thread* that created the child exits, so both are started from a
thread that lives as long as the children are needed (the caller's, around the pool; the main thread for
the server). Elsewhere than Linux these are no-ops and the children behave as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a child: have the kernel send ``sig`` when the parent exits; exit now if it already has.

    ``parent_pid`` is the parent's pid as the parent saw it before starting the child: if the parent died
    before this call, the child has been re-parented already and the signal would never come.
    """
    if _LIBC is not None and _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if os.getppid() != parent_pid:
        os._exit(1)


def _start_pool_worker(parent_pid: int, initializer: tuple[str, str] | None, initargs: tuple) -> None:
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole foreground group: the parent stops the pool, the workers need not print
    # a KeyboardInterrupt traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        module, qualname = initializer
        functools.reduce(getattr, qualname.split("."), importlib.import_module(module))(*initargs)


@contextlib.contextmanager
def process_pool(
    max_workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()
) -> Iterator[ProcessPoolExecutor]:
    """A spawn ``ProcessPoolExecutor`` whose workers die with this process.

    Spawn, not fork: the parent may hold DuckDB/onnxruntime thread pools that a fork would copy mid-use.
    ``initializer`` travels by name and is imported only after the worker has set its death signal: a
    worker killed by its parent's death must not first spend seconds importing the analysers. (Before
    that, a spawn child re-imports the parent's main module; a worker whose parent dies in those first
    seconds exits as soon as it reaches the initializer.) On an exception in the caller (KeyboardInterrupt
    included) queued work is cancelled and the workers are terminated instead of being waited for, so
    Ctrl-C or an error stops the pool at once.
    """
    by_name = (initializer.__module__, initializer.__qualname__) if initializer is not None else None
    pool = ProcessPoolExecutor(
        max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_pool_worker,
        initargs=(os.getpid(), by_name, initargs),
    )
    try:
        yield pool
    except BaseException:
        # ProcessPoolExecutor has no public way to stop running work; its worker processes are in _processes.
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def descendants(pid: int) -> set[int]:
    """Every process descended from ``pid`` (children, grandchildren, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def terminate_descendants(grace_s: float = 2.0) -> None:
    """SIGTERM every descendant of this process, then SIGKILL those still there after ``grace_s``.

    For a forced exit (``os._exit``), which runs no cleanup: children without a parent-death signal (Prefect's
    flow-run processes) would otherwise live on.
    """
    import time

    pids = descendants(os.getpid())
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            for pid in list(pids):
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        pids.discard(pid)
                if not os.path.exists(f"/proc/{pid}"):
                    pids.discard(pid)
            time.sleep(0.05)
