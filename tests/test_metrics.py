"""Evaluation statistics against independent computations."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.metrics import auroc_rows, evaluate_predictions


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # rounding creates ties
    assert auroc_rows(s, y)[0] == pytest.approx(roc_auc_score(y, s))


def _scores(y, strength, rng):
    return np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.25, len(y)), 0, 1)


def test_pgr_value_and_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    probs = {"weak": _scores(y, 0.2, rng), "ceiling": _scores(y, 0.8, rng), "t": _scores(y, 0.5, rng)}
    out = evaluate_predictions(y, probs, "weak", "ceiling", n_boot=300)
    acc = {k: v["accuracy"]["value"] for k, v in out["models"].items()}
    pgr = out["pgr"]["t"]["accuracy"]
    assert pgr["value"] == pytest.approx((acc["t"] - acc["weak"]) / (acc["ceiling"] - acc["weak"]))
    assert pgr["ci95"][0] < pgr["value"] < pgr["ci95"][1]
    assert 0.2 < pgr["value"] < 0.8
    for v in out["models"].values():
        assert v["accuracy"]["ci95"][0] <= v["accuracy"]["value"] <= v["accuracy"]["ci95"][1]


def test_pgr_undefined_when_gap_is_noise():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    same = _scores(y, 0.3, rng)
    probs = {"weak": same, "ceiling": np.clip(same + rng.normal(0, 0.01, 300), 0, 1), "t": _scores(y, 0.3, rng)}
    out = evaluate_predictions(y, probs, "weak", "ceiling", n_boot=300)
    p = out["pgr"]["t"]["accuracy"]
    assert p["value"] is None and p["ci95"] is None and "within noise" in p["reason"]


def test_evaluate_module_loads_offline_by_path():
    import evaluate

    path = Path(__file__).resolve().parent.parent / "pipeline" / "metrics" / "pgr"
    metric = evaluate.load(str(path))
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    w, c, t = _scores(y, 0.2, rng), _scores(y, 0.8, rng), _scores(y, 0.5, rng)
    got = metric.compute(references=y, weak_scores=w, transfer_scores=t, ceiling_scores=c, n_boot=200)
    want = evaluate_predictions(y, {"weak": w, "ceiling": c, "transfer": t}, "weak", "ceiling", n_boot=200)
    assert got["accuracy"]["value"] == pytest.approx(want["pgr"]["transfer"]["accuracy"]["value"])
