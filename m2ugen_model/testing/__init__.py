"""Test doubles and published-layout fixtures for m2ugen_model (no test framework imports)."""
