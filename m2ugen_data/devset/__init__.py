"""Real-music development sets with known truth, for measuring what the analysers hear.

Three sets, built by ``m2ugen-data devset build`` (each: ``audio/``, ``truth.parquet``, ``README.md``):

- ``gm``: General-MIDI pieces (MMA accompaniment grooves + a composed melody) rendered by fluidsynth, with
  exact tempo, meter, key, beats, downbeats, chords and instruments, sibling groups (same notes, other
  instruments: true MUEdit pairs) and tempo twins (hard negatives). Modules: ``grooves`` (styles),
  ``harmony`` (keys, chords, melody), ``gm_programs`` (GM names and families), ``midi`` (MIDI surgery),
  ``orchestration`` (sibling instrumentations), ``render`` (mma/fluidsynth), ``gm_plan``, ``gm``.
- ``scores``: excerpts of MIDI files and score collections from eight sources (``score_sources``), with
  exact beats, downbeats and instruments read from the files (``scores``), built by ``scores_set``.
- Both MIDI sets render through several General-MIDI soundfonts (``soundfonts``), so a measurement cannot
  learn one soundfont; each truth row names its ``source`` and ``soundfont``.
- ``recordings``: real music and real non-music from Debian packages for the music filter. Modules:
  ``rec_sources`` (the catalogue), ``recordings`` (cutting and joining).

``truth`` holds the schemas, ids and splits both share; ``metrics`` scores any analyser against them.
"""
