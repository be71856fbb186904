"""MUEdit pair mining (see ``mine.py``'s docstring for the algorithm)."""
