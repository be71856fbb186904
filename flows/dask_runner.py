"""prefect-dask's ``DaskTaskRunner``, connecting when the flow run starts and failing in one line when the
scheduler does not answer (imported only for ``M2UGEN_TASK_RUNNER=dask``, so prefect-dask stays optional).

Why a subclass: ``DaskTaskRunner`` connects lazily, at the first submitted task, so a wrong address used to
surface only after the flow had acquired its clips, after ``distributed``'s 30 s connect retry, as a
multi-line comm error. The connect timeout travels in ``client_kwargs`` because Prefect starts each flow
run on ``task_runner.duplicate()``, which keeps ``client_kwargs`` (and the subclass) but no other attribute.
The connection is probed first (``check_scheduler``): ``distributed`` bounds the TCP connect but not the
handshake after it, so an address that accepts and never answers would hang the flow for good.
"""

from __future__ import annotations

from typing import Any

from prefect_dask import DaskTaskRunner

from flows.dask_checks import CONNECT_TIMEOUT_S, check_scheduler, unreachable


class CheckedDaskTaskRunner(DaskTaskRunner):
    """A ``DaskTaskRunner`` whose connection to ``address`` is made, within a bound, when the flow starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        client_kwargs = dict(kwargs.pop("client_kwargs", None) or {})
        client_kwargs.setdefault("timeout", CONNECT_TIMEOUT_S)
        super().__init__(*args, client_kwargs=client_kwargs, **kwargs)

    def __enter__(self) -> CheckedDaskTaskRunner:
        super().__enter__()
        if self.address:
            try:
                check_scheduler(self.address, self.client_kwargs["timeout"])
                self.client  # noqa: B018 - the property connects
            except BaseException as e:
                super().__exit__(None, None, None)
                if isinstance(e, (OSError, TimeoutError)):
                    raise unreachable(self.address, self.client_kwargs["timeout"], e) from None
                raise
        return self
