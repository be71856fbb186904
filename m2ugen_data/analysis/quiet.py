"""Keep the console readable: madmom, onnxruntime, librosa and silero-vad print warnings for every clip.

onnxruntime logs shape-inference warnings from C++ for each network call (8 per clip for the downbeat
ensemble), so its default logger severity is raised; the Python-side warnings are filtered by module so a
genuine warning elsewhere still shows.
"""

from __future__ import annotations

import warnings


def quiet_libraries() -> None:
    """Idempotent; call before loading any model, in every worker process."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # 3 = errors only
    for module in ("madmom", "librosa", "silero_vad", "pyloudnorm", "audioread"):
        warnings.filterwarnings("ignore", module=module)
    warnings.filterwarnings("ignore", message=".*support only 16000 sampling rate.*")
