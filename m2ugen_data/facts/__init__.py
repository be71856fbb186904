"""What the measurements let a text say: facts of a clip (``measured``) and the confidence rules (``rules``).

Below every text writer (grounded captions, template dialogues) and the claim checker (``factcheck``), so
all of them read one account of what was heard and none imports another.
"""
