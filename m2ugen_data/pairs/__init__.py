"""MUEdit pair mining: clips that share tempo, beat grid and (preferably) harmony while their measured
instrumentation differs. ``mine.py`` explains the method and holds the warehouse entry (``mine_warehouse``).

rules        what a pair must satisfy (``PairRules``) and what a run reports (``MiningResult``)
clips        eligibility per clip and the kernels' per-clip arrays (``ClipArrays``)
band         the sort orders and the DuckDB band join that proposes candidate edges
kernels      compiled per-edge rules, score, measurements and the greedy degree cap (numba)
select       scored edges in best-first order, the degree cap, the PAIRS rows
full         a full mine (``mine_pairs``)
cache        the state an incremental re-mine starts from (``PairCache``), saved between runs
merge        the incremental miner's merges of cached and new clips, orders and edges
incremental  a re-mine that searches only what new or changed clips can affect, equal to a full mine
evaluation   the miner against sibling truth, every written pair re-checked in plain Python
"""
