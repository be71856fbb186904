"""The M2UGen trainer: shard streaming (data), tokenising and padding (collate), the loop (DDP/FSDP),
exact-resume checkpoints, and the settings object. The CLI is ``cli`` (m2ugen-train)."""
