"""The transfer stage's guardrails: a degenerate student is flagged; weak-label temperature scaling is
fitted out of sample on A and never reads B's or the test split's gold."""

import numpy as np
import pytest

from pipeline.stages.transfer import calibrated, student_checks


def _onehot(y):
    return np.eye(2, dtype=np.float32)[np.asarray(y)]


def test_a_student_that_ignores_its_labels_or_predicts_one_class_is_flagged():
    rng = np.random.default_rng(0)
    labels = _onehot(rng.integers(0, 2, 400))
    good = student_checks(None, labels, {"transfer": labels, "test": _onehot(rng.integers(0, 2, 300))})
    assert good["agreement_with_labels_B"] == 1.0 and good["warnings"] == []
    ignoring = student_checks(None, labels, {"transfer": _onehot(rng.integers(0, 2, 400)),
                                             "test": _onehot(rng.integers(0, 2, 300))})
    assert len(ignoring["warnings"]) == 1 and "did not learn them" in ignoring["warnings"][0]
    collapsed = student_checks(None, labels, {"transfer": labels, "test": _onehot(np.ones(300, dtype=int))})
    assert collapsed["test_positive_share"] == 1.0 and "collapsed to one class" in collapsed["warnings"][0]
    inverted = student_checks(None, labels, {"transfer": labels[:, ::-1], "test": labels[:300]})
    assert "worse than chance" in inverted["warnings"][0]


def test_temperature_calibration_is_fitted_on_crossfit_weak_outputs_of_a_only():
    from pipeline.config.schema import MethodConfig
    from pipeline.methods.base import MethodContext, Split

    rng = np.random.default_rng(1)
    n = 3000
    true = {s: rng.uniform(0.05, 0.95, n) for s in ("train_weak", "transfer", "test")}
    gold = {s: (rng.random(n) < p).astype(int) for s, p in true.items()}

    def over(p):  # an overconfident weak model: its outputs are the true probabilities sharpened by T = 1/4
        q = np.c_[1 - p, p] ** 4
        return (q / q.sum(1, keepdims=True)).astype(np.float32)

    def context(gold_b):
        splits = {s: Split([f"{s}{i}" for i in range(n)], gold[s], list(range(n))) for s in true}
        splits["transfer"].labels = gold_b
        calls = []

        def fit_weak(train_rows, predict_rows, desc):
            calls.append((len(train_rows), len(predict_rows), desc))
            return over(true["train_weak"][predict_rows])

        return MethodContext(seed=0, splits=splits, weak_labels=over(true["transfer"]), weak_train_probs=None,
                             weak_test_probs=None, strong=None, features=None, fit_weak=fit_weak,
                             prompter=None), calls

    gold_b = gold["transfer"]
    ctx, calls = context(gold_b)
    cfg = MethodConfig(calibrate="temperature", calibrate_folds=3)
    out = calibrated(ctx, cfg)
    assert out["temperature"] == pytest.approx(4.0, rel=0.1)
    assert len(calls) == 3 and all(a + b == n for a, b, _ in calls) and calls[0][2].startswith("calibrate")
    assert out["ece_B_after"] < 0.03 < out["ece_B_before"]  # B's gold: reporting only
    assert np.allclose(ctx.weak_labels[:, 1], true["transfer"], atol=0.02)
    shuffled, _ = context(rng.permutation(gold_b))  # B's gold does not move T
    assert calibrated(shuffled, cfg)["temperature"] == out["temperature"]
