"""The trainer's user-facing error: one line, printed by the CLI without a traceback.

The model package must not depend on the data pipeline, so this does not subclass ``m2ugen_data``'s errors.
"""


class TrainError(Exception):
    """Bad input or environment for a training run (no shards, bad config, incompatible checkpoint)."""
