"""What a training set may use, as warehouse state: the held-out split (``split``) and the one rule every
sample source, ``shards verify``, pair mining and the disjointness check apply (``gate``: held-out videos,
clips of evaluation sets, dropped near-duplicates). Below ``shards`` and ``pairs``, above the warehouse.
"""
