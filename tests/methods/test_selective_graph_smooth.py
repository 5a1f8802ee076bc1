"""graph_smooth and selective on synthetic cases where the right answer is known."""

import numpy as np
import pytest

from pipeline.config.loading import load_recipe
from pipeline.config.schema import HeadConfig
from pipeline.errors import UserError
from pipeline.methods.graph_smooth import knn_graph, propagate, smooth
from pipeline.methods.selective import choose_tau, cross_fit_self_labels


def _clusters(n_per=20, d=8, seed=0):
    """Two tight, well separated clusters: class = cluster."""
    rng = np.random.default_rng(seed)
    centers = np.zeros((2, d))
    centers[0, 0], centers[1, 1] = 10, 10
    y = np.repeat([0, 1], n_per)
    return centers[y] + rng.normal(0, 0.1, (2 * n_per, d)), y


def test_flipped_label_among_identical_neighbours_is_restored():
    x, y = _clusters()
    soft = np.eye(2)[y] * 0.8 + 0.1
    soft[3] = [0.2, 0.8]  # one wrong weak label inside cluster 0
    # balance=False: with it, the one flip would also set the class-1 share (21/40) the output must keep
    for inputs in ("soft", "hard"):
        out = smooth(x, soft, knn=5, alpha=0.7, inputs=inputs, balance=False)
        assert (out.argmax(1) == y).all(), inputs
        assert np.allclose(out.sum(1), 1)
    assert smooth(x, soft, knn=5, alpha=0.0, balance=False).argmax(1)[3] == 1  # alpha = 0: no smoothing


def test_alpha_zero_keeps_labels_and_balance_shift_matches_prior():
    x, y = _clusters(30)
    soft = np.clip(np.eye(2)[y] * 0.6 + 0.2 + np.random.default_rng(1).normal(0, 0.05, (60, 2)), 0.01, 0.99)
    soft /= soft.sum(1, keepdims=True)
    kept = propagate(x, soft, 5, 0.0)
    assert (kept.argmax(1) == soft.argmax(1)).all()
    skewed = propagate(x, soft, 5, 0.9, balance_to=0.25)
    assert abs((skewed.argmax(1) == 1).mean() - 0.25) < 0.05


def test_knn_graph_is_symmetric_sparse_and_has_no_self_loops():
    x, y = _clusters(15)
    w = knn_graph(x, 4, block=7).to_dense()  # blocks smaller than n exercise the blockwise path
    assert torch_allclose(w, w.T) and (w.diagonal() == 0).all()
    assert ((w > 0).sum(1) >= 4).all() and (w > 0).sum() <= 2 * 30 * 4
    i, j = (w > 0).nonzero(as_tuple=True)
    assert (y[i.numpy()] == y[j.numpy()]).all()  # cosine neighbours stay inside their cluster


def torch_allclose(a, b):
    import torch

    return torch.allclose(a, b)


def test_cross_fitted_self_labels_never_see_their_own_label():
    """If a probe could see an example's own (wrong) label it would copy it; cross-fitting cannot."""
    x, y = _clusters(25, d=4)
    weak = np.eye(2)[y].astype(np.float32)
    wrong = [0, 1, 27, 30]
    weak[wrong] = 1 - weak[wrong]
    self_labels = cross_fit_self_labels(x, weak, 5, HeadConfig(l2_grid=[0.1], cv_folds=2), seed=0)
    assert (self_labels.argmax(1) == y).all()  # the wrong weak labels are overruled by their neighbours


def test_tau_routes_exactly_where_self_labels_beat_weak_labels():
    # P(IK) high on the first half, where self-labels are perfect and weak labels are half wrong.
    pik = np.r_[np.linspace(0.9, 1.0, 50), np.linspace(0.0, 0.5, 50)]
    self_correct = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    weak_correct = np.r_[np.arange(50) % 2 == 1, np.ones(50, bool)]
    out = choose_tau(pik, self_correct, weak_correct, min_routed=5)
    assert out["tau"] is not None and 0.5 < out["tau"] <= 0.9  # routes exactly the first half
    assert (pik >= out["tau"]).sum() == 50
    # the literal "beat the weak labels on the routed part" rule is laxer: it also routes some of the rest
    lax = choose_tau(pik, self_correct, weak_correct, min_routed=5, rule="beat_weak")["tau"]
    assert lax < 0.5
    # self-labels never better: no threshold routes anything
    for rule in ("best_mix", "beat_weak"):
        assert choose_tau(pik, np.zeros(100, bool), np.ones(100, bool), 5, rule)["tau"] is None


def test_bad_selective_config(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("data: {name: multiemo}\nmethods:\n  - {name: selective, tau: 1.5, folds: 1, tau_rul: fixed}\n"
                 "  - {name: graph_smooth, alpha: 1.0}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert "methods[0].tau_rul: unknown key (did you mean 'tau_rule'?)" in str(e.value)
    p.write_text("data: {name: multiemo}\nmethods:\n  - {name: selective, tau: 1.5, folds: 1}\n"
                 "  - {name: graph_smooth, alpha: 1.0}\n  - {name: selective, smoothing: {knn: 0}}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "methods[0].tau: a probability threshold must be in [0, 1], got 1.5" in msg
    assert "methods[0].folds: must be at least 2" in msg and "methods[1].alpha: must be in [0, 1)" in msg
    assert "methods[2].smoothing.knn: must be at least 1" in msg
