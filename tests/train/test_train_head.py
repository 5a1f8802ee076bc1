"""The training pieces: length-grouped batches, the linear head, batched inference order."""

import numpy as np
import pytest
import torch

from pipeline.config.schema import HeadConfig
from pipeline.train import head as head_mod
from pipeline.train.head import fit_head, head_proba
from pipeline.train.loop import LengthGroupedBatches


def test_length_grouped_batches_cover_every_example_once_per_epoch():
    lengths = list(np.random.default_rng(0).integers(1, 50, 103))
    sampler = LengthGroupedBatches(lengths, 8, seed=0)
    e1, e2 = list(sampler), list(sampler)
    for epoch in (e1, e2):
        flat = sorted(i for b in epoch for i in b)
        assert flat == list(range(103))
    assert e1 != e2  # reshuffled each epoch
    # grouping reduces padding relative to random batches
    def pad(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert pad(e1) < pad(LengthGroupedBatches(lengths, 8, seed=0, group=False).__iter__())


def test_head_learns_a_separable_direction_and_cv_picks_from_grid():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20)) * 5 + 3
    y = (X[:, 0] - 3 > 0).astype(int)
    head = fit_head(X[:200], np.eye(2)[y[:200]], HeadConfig(l2_grid=[1e-3, 10.0], cv_folds=3), seed=0)
    acc = (head_proba(head, X[200:]).argmax(1) == y[200:]).mean()
    assert acc > 0.9
    assert head["l2"] == 1e-3 and set(head["cv_xent"]) == {1e-3, 10.0}


def _float64_newton(X, p, l2, iters=40):
    """Reference: plain float64 Newton on the same objective (no line search needed from zero here)."""
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    reg = torch.full((d + 1,), 2 * l2, dtype=X.dtype)
    reg[-1] = 1e-8
    w = torch.zeros(d + 1, dtype=X.dtype)
    for _ in range(iters):
        q = torch.sigmoid(Xb @ w)
        hess = (Xb.T * (q * (1 - q) / n)) @ Xb + torch.diag(reg)
        w = w - torch.linalg.solve(hess, Xb.T @ (q - p) / n + reg * w)
    return w


@pytest.mark.parametrize("l2", [1e-3, 0.1])
def test_newton_with_float32_hessian_reaches_the_float64_optimum(l2):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 60, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 60, dtype=torch.float64)
    p = torch.sigmoid(X[:, :3].sum(1) + 0.5 * torch.randn(400, generator=g, dtype=torch.float64))  # soft targets
    w = head_mod._fit_logistic(X, p, l2, 30)
    ref = _float64_newton(X, p, l2)
    assert w.dtype == torch.float64
    assert (w - ref).abs().max() < 1e-9 * ref.abs().max()


def test_newton_step_falls_back_to_float64_when_float32_cannot_factor():
    X = torch.ones(5, 3, dtype=torch.float32)  # rank 1: X^T X is singular, and reg is zero
    grad = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    step = head_mod._newton_step(X, torch.ones(5), torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), grad)
    assert step.dtype == torch.float64 and torch.isfinite(step).all()
    assert torch.allclose(torch.ones(3, 3, dtype=torch.float64) * 5 @ step, grad)  # grad is in H's range: solved
    ok = head_mod._newton_step(X, torch.ones(5), torch.ones(3, dtype=torch.float64), grad)
    assert torch.allclose(ok, torch.linalg.solve(torch.ones(3, 3, dtype=torch.float64) * 5 + torch.eye(3), grad))


def test_predict_keeps_input_order(tiny_models):
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.predict import pooled_features, predict_proba

    tok = models.load_tokenizer(tiny_models["encoder"])
    model = models.load_classifier(tiny_models["encoder"], tok, "full")
    texts = ["good", "the movie was very bad and boring", "nice", "the staff and the room were fine"]
    acc = Accelerator()
    batched = predict_proba(model, tok, texts, 16, 2, acc)
    single = np.concatenate([predict_proba(model, tok, [t], 16, 1, acc) for t in texts])
    assert batched.shape == (4, 2) and np.allclose(batched, single, atol=1e-5)
    backbone = models.load_backbone(tiny_models["decoder"])
    dtok = models.load_tokenizer(tiny_models["decoder"])
    assert dtok.pad_token == "</s>"  # decoder without a pad token pads with EOS, not id 0
    f = pooled_features(backbone, dtok, texts, 16, "last", 3, acc)
    f1 = np.concatenate([pooled_features(backbone, dtok, [t], 16, "last", 1, acc) for t in texts])
    assert np.allclose(f, f1, atol=1e-5)
