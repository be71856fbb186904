"""Near-duplicate groups by sound: the same recording under several IDs (re-encoded, cut, shifted,
re-levelled, slightly stretched, re-mastered) is one group, and each dataset keeps one member of it.

- ``match``: is B the same recording as A (landmark alignment, then the sketch decides)?
- ``candidates``: which pairs to check, never all of them (shared candidate tokens at one offset).
- ``remaster``: re-masters by the analysis' measurements plus weak landmark support.
- ``groups``: the warehouse stage (incremental), writing the ``duplicates`` manifest.
- ``backfill``: fingerprints for clips analysed before fingerprints existed.
"""
