"""Run ``build-muedit`` with the injected faults of ``flow_faults`` in a process of its own (the resume test
kills it). Usage: python tests/support/flow_script.py WAREHOUSE CORPUS N SEED ANALYSIS_FAILS"""

from __future__ import annotations

import sys

import pytest
from flow_faults import inject

from flows.build_muedit import build_muedit
from flows.params import RunOptions, SyntheticSource, TaskRunnerChoice
from flows.runners import with_runner

SIBLINGS, TROUBLE, BATCH = 0.6, 0.15, 3


def run_muedit(warehouse: str, corpus: str, n: int, seed: int, workers: int | None = None) -> dict:
    flow = with_runner(build_muedit, TaskRunnerChoice(kind="thread", max_workers=workers)) if workers else build_muedit
    return flow(
        warehouse=warehouse,
        synthetic=SyntheticSource(corpus_dir=corpus, n=n, seed=seed, sibling_fraction=SIBLINGS, trouble_fraction=TROUBLE),
        run=RunOptions(batch_size=BATCH),
    )


if __name__ == "__main__":
    wh, corpus, n, seed, bad = sys.argv[1:6]
    with pytest.MonkeyPatch.context() as mp:
        inject(mp, bad)
        run_muedit(wh, corpus, int(n), int(seed), workers=1)  # one batch at a time: the kill lands between batches
