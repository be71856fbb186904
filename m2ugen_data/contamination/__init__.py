"""Evaluation sets kept out of training by sound and by ID, after selection.

- ``evalindex``: evaluation audio (files, directories, eval shards) fingerprinted and indexed by candidate token.
- ``decontaminate``: ``m2ugen-data decontaminate --against PATH...``: matches by ID and by sound, the
  ``contamination`` manifest, shards rewritten, a report per benchmark.
- ``converted``: converted datasets (MusicQA, ...) checked against evaluation audio and held-out clips.

The evaluation lists and the selection rule live with selection (``audioset.evallists``,
``audioset.eval_exclusion``); the held-out split and the training gate in ``m2ugen_data.clean``.
"""
