"""The visual side of MUImage and MUVideo: frames and clips from the source videos, their measurements,
and image/video captioners (BLIP, a video encoder + GPT-2 captioner, VideoMAE labels, and a grounded
offline default)."""
