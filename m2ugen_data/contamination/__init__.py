"""Clean evaluation: evaluation lists kept out of training, held-out splits that stay held out, and what
decontamination removed. Near-duplicate groups by sound live in ``m2ugen_data.dedup``.

- ``evallists``: parse evaluation lists (the bundled MusicCaps list, users' CSVs).
- ``exclusion``: the ID rule selection applies (whole video for whole-audio pools, overlap otherwise).
"""
