"""The preflight: every weight directory, tokenizer, checkpoint and library a run names, checked in seconds
before anything loads (meta-device models, file headers), one ``Finding`` per problem (what, path, problem,
fix): per component (``components``), library versions (``versions``), which checkpoint a path names and
whether it fits (``checkpoints``), the plan and its table (``plan``, ``findings``)."""
