"""Synthetic music corpus with ground truth (tempo, meter, key, beats, instruments, sibling groups)."""

from m2ugen_data.synth.corpus import load_truth, render_corpus

__all__ = ["load_truth", "render_corpus"]
