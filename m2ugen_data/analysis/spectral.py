"""Spectral descriptors from librosa: onset rate, spectral centroid and a compact timbre vector.

The timbre vector is the mean and standard deviation of MFCCs 1-12 (c0, the overall level, is left out
so two renditions differing only in gain are the same timbre): 24 numbers whose Euclidean distance the pair
miner uses as "sounds different".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 22050
HOP = 512
N_MFCC = 13


@dataclass(frozen=True)
class Spectral:
    onset_rate: float  # onsets per second
    centroid_hz: float  # mean spectral centroid
    timbre: np.ndarray  # float32 (24,)
    flatness_log10: float  # mean log10 spectral flatness: near 0 for noise, strongly negative for tones


def analyse_spectral(y22: np.ndarray, sr: int = SAMPLE_RATE) -> Spectral:
    import librosa

    stft = np.abs(librosa.stft(y22, n_fft=2048, hop_length=HOP))
    # The mel projection is a BLAS matrix product: in float32 its last bits depend on the BLAS thread count
    # (a Dask worker runs with 1, a thread-runner flow with every core), which changed the timbre vectors and
    # so the shards' timbre_dist between runners. In float64 the rounding to float32 at the end absorbs it.
    mel = librosa.feature.melspectrogram(S=stft.astype(np.float64) ** 2, sr=sr)
    log_mel = librosa.power_to_db(mel)
    envelope = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=HOP)
    duration = y22.size / sr
    centroid = librosa.feature.spectral_centroid(S=stft, sr=sr)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)[1:]
    timbre = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)
    flatness = librosa.feature.spectral_flatness(S=stft)
    return Spectral(
        onset_rate=float(len(onsets) / duration) if duration > 0 else 0.0,
        centroid_hz=float(np.mean(centroid)),
        timbre=timbre,
        flatness_log10=float(np.mean(np.log10(np.maximum(flatness, 1e-10)))),
    )
