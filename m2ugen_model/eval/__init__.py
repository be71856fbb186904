"""Evaluation harness (``m2ugen-eval``): understanding metrics (BLEU, BLEU-4, METEOR, ROUGE-L, BERTScore) in
``text``, generation metrics (FAD, KL over tagger outputs, CLAP score) in ``audio``, runs over files in
``run`` and the per-run results table (Markdown + JSON) in ``report``. Every model is read from a local
directory; nothing is downloaded at run time."""
