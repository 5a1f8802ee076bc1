"""Calibration of binary soft labels: expected calibration error and temperature scaling.

Plain numpy. `ece` bins the predicted class's probability (equal-width bins) and averages
|accuracy - confidence| weighted by bin size (Guo et al. 2017). `fit_temperature` finds the T that
minimises the negative log-likelihood of softmax(log p / T) on labelled examples; `temper` applies it.
The transfer stage fits T on the weak model's *out-of-sample* outputs on A (weak models retrained on
the other folds of A), so neither B's nor the test split's gold is looked at.
"""

import numpy as np

EPS = 1e-6


def ece(probs: np.ndarray, labels, bins: int = 15) -> float:
    """Expected calibration error of [n, 2] class probabilities against 0/1 labels."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels).astype(int)
    pred = probs.argmax(1)
    conf = probs.max(1)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(float((pred[inside] == labels[inside]).mean()) - float(conf[inside].mean()))
    return total / max(1, len(labels))


def temper(probs: np.ndarray, t: float) -> np.ndarray:
    """softmax(log p / t) of [n, 2] probabilities (t > 1 softens, t < 1 sharpens), float32."""
    logp = np.log(np.clip(np.asarray(probs, dtype=float), EPS, 1.0)) / t
    logp -= logp.max(1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, labels, grid: np.ndarray | None = None) -> float:
    """The temperature minimising the NLL of `temper(probs, t)` on (probs, labels): a log-spaced grid
    search from 0.05 to 20, then a finer one around the best (the NLL is unimodal in log t)."""
    labels = np.asarray(labels).astype(int)

    def nll(t):
        p = temper(probs, t)
        return -float(np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], EPS, 1.0))))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 121)) if grid is None else grid
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])
