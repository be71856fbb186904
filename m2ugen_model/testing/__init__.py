"""Test doubles of the model side: tiny random stand-ins and tiny models written in the real checkpoints'
published layouts, for tests and benches only (production code never imports this package)."""
