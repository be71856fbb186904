"""Run ``build-muedit`` or ``build-mucaps`` on a few synthetic clips, in-process or as a script whose task
runner comes from the environment (``M2UGEN_TASK_RUNNER=dask M2UGEN_DASK_ADDRESS=...``), as a served run's does.
Usage: python tests/support/dask_flow.py muedit|mucaps WAREHOUSE CORPUS"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.params import RunOptions, SyntheticSource, TaskRunnerChoice
from flows.runners import with_runner

SOURCES = {
    "muedit": SyntheticSource(n=8, seed=5, sibling_fraction=0.75, trouble_fraction=0.15),
    "mucaps": SyntheticSource(n=4, seed=5, sibling_fraction=0.0, trouble_fraction=0.25),
}
RUN = RunOptions(batch_size=2, caption_batch_size=3, dialogue_batch_size=2)


def run_flow(dataset: str, root: Path, corpus: Path, choice: TaskRunnerChoice | None = None) -> dict:
    """The flow with ``choice``'s runner (default: the flow's own, from the environment)."""
    from flows.build_mucaps import build_mucaps
    from flows.build_muedit import build_muedit

    flow = {"muedit": build_muedit, "mucaps": build_mucaps}[dataset]
    flow = with_runner(flow, choice) if choice else flow
    return flow(warehouse=str(root), synthetic=SOURCES[dataset].model_copy(update={"corpus_dir": str(corpus)}), run=RUN)


if __name__ == "__main__":
    run_flow(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
