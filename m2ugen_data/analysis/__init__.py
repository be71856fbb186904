"""Per-clip music analysis (rhythm, key, loudness, speech, spectral), the MUCaps music filter, and MUEdit
pair mining over the resulting ``features`` manifest.

Each analyser is a module with one job and a plain function over decoded samples, so it can be tested and
timed alone; ``analyze`` wires them into a process pool that decodes each clip once.
"""
