"""Converters from the public layouts of the other datasets the paper trains on (MusicQA, Alpaca, COCO
captions) into WebDataset shards the trainer mixes in by name (``--extra-shards NAME=URL``). Each validates
every record and records what it rejects (``conversion.json`` beside the shards)."""
