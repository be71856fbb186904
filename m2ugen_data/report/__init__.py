"""The dataset card: ``m2ugen-data report`` and ``write_report(wh, out)``.

Per dataset an HTML page, a Hugging Face README, PNG figures (matplotlib) and a few sample media files,
plus an ``index.html``; everything read from the warehouse's DuckDB views. Modules: ``datasets`` (what the
four datasets are), ``queries`` (SQL), ``figures``, ``media`` and ``samples`` (the sample table),
``render`` (Jinja templates), ``build`` (the card directory, swapped in atomically).
"""

from m2ugen_data.report.build import write_report

__all__ = ["write_report"]
