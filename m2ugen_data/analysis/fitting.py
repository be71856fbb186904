"""The small models the hearing layer fits on the dev sets: logistic regression and a conditional logit.

Both are L2-regularised on standardised inputs and solved by Newton's method (a handful of parameters,
hundreds to thousands of clips: a few milliseconds, no extra library, deterministic). The benches that
fit them leave-one-source-out call these many times, so speed matters more than generality.

- ``fit_logistic``: P(y=1 | x) = sigmoid(w . (x - mean) / scale + b): the music-likeness score, the tempo
  confidence calibration, one instrument word.
- ``fit_conditional_logit``: each clip has candidates (tempo grids), each described by a feature row; P(k)
  = softmax_k(w . (x_k - mean) / scale) over the clip's allowed candidates, one weight vector shared by all
  candidates. The tempo decision.
"""

from __future__ import annotations

import numpy as np


def standardise(x: np.ndarray, axes: tuple[int, ...] = (0,)) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) over ``axes``; constant columns get scale 1 (they then carry no weight)."""
    mean = x.mean(axis=axes)
    scale = x.std(axis=axes)
    scale = np.where(scale < 1e-9, 1.0, scale)
    return mean, scale


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-2, weight: np.ndarray | None = None
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression: (weights, bias, mean, scale); ``weight`` per sample (default 1)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sw = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    mean, scale = standardise(x)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # no penalty on the bias
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -500, 500)))
        grad = z.T @ (sw * (p - y)) + reg * w
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1]), mean, scale


def logistic_prob(x: np.ndarray, weights: np.ndarray, bias: float, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = ((np.asarray(x, dtype=np.float64) - mean) / scale) @ weights + bias
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def fit_conditional_logit(
    x: np.ndarray, allowed: np.ndarray, target: np.ndarray, l2: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, mean, scale) maximising sum log P(target candidate) - l2/2 |w|^2.

    ``x``: (clips, candidates, features); ``allowed``: (clips, candidates) bool; ``target``: (clips,) the
    index of the right candidate. Clips whose target is not allowed must be left out by the caller.
    Standardisation is over allowed candidates of all clips."""
    x = np.asarray(x, dtype=np.float64)
    allowed = np.asarray(allowed, dtype=bool)
    flat = x[allowed]
    mean, scale = standardise(flat)
    z = (x - mean) / scale
    n, k, d = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), target] = 1.0
    w = np.zeros(d)
    for _ in range(100):
        s = np.where(allowed, z @ w, -np.inf)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        mean_x = np.einsum("nk,nkd->nd", p, z)
        grad = -(np.einsum("nk,nkd->d", onehot, z) - mean_x.sum(axis=0)) + l2 * w
        zc = z - mean_x[:, None, :]
        hess = np.einsum("nk,nkd,nke->de", p, zc, zc) + l2 * np.eye(d)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w, mean, scale
