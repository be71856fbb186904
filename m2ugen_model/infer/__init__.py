"""Inference: ``m2ugen-infer`` (``cli``), loading weights and checkpoints from local directories (``load``),
8-bit and offloaded LLaMA blocks for small cards (``lowmem``), reading the user's media (``media_io``) and
generation itself (``inference``)."""
