"""Checks that turn the two ways a Dask cluster is commonly mis-set into one clear line each.

- A scheduler address that does not answer: ``distributed`` connects only at the first submitted task
  (after the flow has acquired its clips), retries a refused connection for 30 s before a multi-line
  ``OSError``, and waits forever on a port that accepts but never answers its handshake.
  ``check_scheduler`` makes the whole exchange once, within a bound, and names the address.
- A worker that does not see the warehouse at the flow's path (another mount point, a node without the
  shared filesystem): ``open_warehouse`` would quietly create an empty warehouse on that worker's local disk
  and the batch's rows would land there, lost to every reader. ``visible_warehouse`` refuses instead,
  naming the path and the worker's host. The flow creates the warehouse (``steps.resolve_root``) before any
  task runs, so on a worker a missing ``manifests`` directory means the worker cannot see it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
from pathlib import Path

from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import Warehouse, open_warehouse

CONNECT_TIMEOUT_S = 10.0  # a TCP connect and the Dask handshake; a scheduler that takes longer is not answering


class SchedulerUnreachableError(M2UGenError):
    """The Dask scheduler address given for the flows does not answer."""


class WarehouseNotVisibleError(M2UGenError):
    """A task runs on a worker that cannot see the warehouse (not retried: the cluster must be fixed)."""


def check_scheduler(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ``SchedulerUnreachableError`` unless a Dask server answers the comm handshake at ``address``
    within ``timeout_s``.

    ``distributed``'s own ``timeout`` bounds only the TCP connect, not the handshake read after it, so a port
    that accepts connections and never speaks Dask (a hung scheduler, another service, a proxy) makes
    ``Client(address)`` wait forever. Here the whole exchange is bounded; it runs on a loop of its own in a
    helper thread, so it works whether or not the caller already runs an event loop.
    """
    from distributed.comm import connect

    async def probe() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout_s), timeout_s)
        await comm.close()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dask-probe") as pool:
        try:
            pool.submit(asyncio.run, probe()).result()
        except Exception as e:  # noqa: BLE001 - whatever the address did, the answer is "not a scheduler"
            raise unreachable(address, timeout_s, e) from None


def unreachable(address: str, timeout_s: float, error: BaseException) -> SchedulerUnreachableError:
    why = str(error).splitlines()[0] if str(error) else type(error).__name__  # TimeoutError has no text
    return SchedulerUnreachableError(
        f"dask scheduler {address} did not answer within {timeout_s:g} s ({why}); start one (`dask scheduler`) "
        "or fix M2UGEN_DASK_ADDRESS / --dask-address"
    )


def visible_warehouse(root: str) -> Warehouse:
    """The warehouse at ``root`` as this process sees it, or ``WarehouseNotVisibleError`` naming path and host."""
    path = Path(root)
    if not path.is_absolute():
        raise WarehouseNotVisibleError(
            f"warehouse path {root!r} is relative; tasks on other processes or hosts need an absolute path "
            f"(host {socket.gethostname()}, cwd {os.getcwd()})"
        )
    if not (path / "manifests").is_dir():
        raise WarehouseNotVisibleError(
            f"warehouse {root} is not visible on host {socket.gethostname()} (pid {os.getpid()}): every task-runner "
            "worker must mount the shared warehouse at the same path as the flow"
        )
    return open_warehouse(path)
