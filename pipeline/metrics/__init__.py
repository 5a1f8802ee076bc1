"""Evaluation statistics: accuracy, AUROC and performance gap recovered (PGR), with paired-bootstrap CIs.

Plain numpy, vectorised over bootstrap resamples. `pipeline/metrics/pgr/pgr.py` exposes the same
computation as an `evaluate` module that loads offline by path.
"""

import numpy as np
from scipy.stats import rankdata


def auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row (Mann-Whitney U with tied ranks averaged); nan where a row has one class."""
    scores, labels = np.atleast_2d(scores), np.atleast_2d(labels)
    ranks = rankdata(scores, axis=1)
    pos = labels.sum(1)
    neg = labels.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(1) - pos * (pos + 1) / 2) / (pos * neg)


def _metric_rows(kind: str, p1: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    if kind == "accuracy":
        return ((p1 > 0.5).astype(int) == y)[idx].mean(-1)
    return auroc_rows(p1[idx], y[idx])


def evaluate_predictions(y: np.ndarray, probs: dict[str, np.ndarray], weak: str, ceiling: str,
                         n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Point values and CIs for every model, and PGR of every other model relative to weak and ceiling.

    Resamples test examples jointly for all models (paired bootstrap), so CIs of differences and of
    PGR account for the models being scored on the same examples.
    PGR = (transfer - weak) / (ceiling - weak); undefined (None + reason) unless the ceiling - weak
    difference's CI excludes 0 in the ceiling's favour.
    """
    y = np.asarray(y).astype(int)
    n = len(y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    lo_q, hi_q = (1 - ci) / 2 * 100, (1 + ci) / 2 * 100
    full = np.arange(n)[None]
    out = {"n_test": n, "n_bootstrap": n_boot, "ci_level": ci, "models": {}, "pgr": {}}
    boots = {}
    for name, p in probs.items():
        p1 = np.asarray(p, dtype=float)
        entry = {}
        for kind in ("accuracy", "auroc"):
            b = _metric_rows(kind, p1, y, idx)
            boots[name, kind] = b
            entry[kind] = {"value": float(_metric_rows(kind, p1, y, full)[0]),
                           "ci95": [float(np.nanpercentile(b, lo_q)), float(np.nanpercentile(b, hi_q))]}
        out["models"][name] = entry
    for name in probs:
        if name in (weak, ceiling):
            continue
        out["pgr"][name] = {}
        for kind in ("accuracy", "auroc"):
            w, c, t = (out["models"][m][kind]["value"] for m in (weak, ceiling, name))
            gap_b = boots[ceiling, kind] - boots[weak, kind]
            gap_lo = float(np.nanpercentile(gap_b, lo_q))
            entry = {"value": None, "ci95": None, "gap": c - w, "gap_ci95": [gap_lo, float(np.nanpercentile(gap_b, hi_q))]}
            if gap_lo <= 0:
                entry["reason"] = (f"ceiling - weak {kind} = {c - w:+.4f} is within noise "
                                   f"({ci:.0%} CI of the difference includes 0): PGR would divide by ~0")
            else:
                with np.errstate(divide="ignore", invalid="ignore"):  # rare resamples with a zero gap
                    pgr_b = (boots[name, kind] - boots[weak, kind]) / gap_b
                entry["value"] = float((t - w) / (c - w))
                entry["ci95"] = [float(np.nanpercentile(pgr_b, lo_q)), float(np.nanpercentile(pgr_b, hi_q))]
            out["pgr"][name][kind] = entry
    return out
