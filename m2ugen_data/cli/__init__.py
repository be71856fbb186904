"""The ``m2ugen-data`` command: ``app`` (typer) and ``main`` (the console script), defined in ``root.py``."""

from m2ugen_data.cli.root import app, main

__all__ = ["app", "main"]
