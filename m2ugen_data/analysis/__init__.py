"""Per-clip music analysis (rhythm, key, loudness, speech, spectral) and the MUCaps music filter, into the
``features`` manifest (which MUEdit pair mining, ``m2ugen_data.pairs``, reads).

Each analyser is a module with one job and a plain function over decoded samples, so it can be tested and
timed alone; ``analyze`` wires them into a process pool that decodes each clip once.
"""
