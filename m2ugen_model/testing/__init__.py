"""Test doubles of the model side: tiny random stand-ins written in the real checkpoints' layouts, for
tests and benches only (production code never imports this package)."""
