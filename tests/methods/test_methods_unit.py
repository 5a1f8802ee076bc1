"""Transfer methods on a `MethodContext` built from arrays: no run directory, no model."""

import numpy as np
import pytest

from pipeline.config.schema import ModelConfig
from pipeline.methods import METHODS
from pipeline.methods.base import MethodContext, Split


def _context(n=120, d=6, seed=0, fit_weak=None):
    """Two separable classes in feature space; weak labels right on 75% of B, confidently."""
    rng = np.random.default_rng(seed)
    splits, feats = {}, {}
    for name in ("train_weak", "transfer", "test"):
        y = np.arange(n) % 2
        feats[name] = rng.normal(0, 1, (n, d)) + 2.5 * y[:, None] * np.eye(d)[0]
        splits[name] = Split([f"{name} {i}" for i in range(n)], y, list(range(n)))
    gold_b = splits["transfer"].labels
    wrong = rng.random(n) < 0.25
    p1 = np.where(gold_b ^ wrong, 0.8, 0.2).astype(np.float32)
    weak = np.stack([1 - p1, p1], 1)
    strong = ModelConfig(model="unused", mode="head")
    strong.head.l2_grid, strong.head.cv_folds = [0.1, 1.0], 3
    calls = []

    def default_fit_weak(train_rows, predict_rows, desc):
        calls.append((np.asarray(train_rows), np.asarray(predict_rows)))
        assert not set(train_rows) & set(predict_rows)  # cross-fitting never predicts a row it trained on
        y = splits["train_weak"].labels[predict_rows]
        q = np.where(y == 1, 0.7, 0.3)
        return np.stack([1 - q, q], 1)

    def no_prompter(*a, **k):
        raise AssertionError("this method should not prompt")

    ctx = MethodContext(seed=seed, splits=splits, weak_labels=weak, weak_train_probs=weak.copy(),
                        weak_test_probs=weak.copy(), strong=strong,
                        features=lambda names: {s: feats[s] for s in names}, fit_weak=fit_weak or default_fit_weak,
                        prompter=no_prompter, default_prompt=(None, None))
    return ctx, calls


def test_naive_and_aux_conf_pass_the_weak_labels_through():
    ctx, _ = _context()
    for name in ("naive", "aux_conf"):
        out = METHODS[name].build_labels(METHODS[name].Config(), ctx)
        assert out.targets.dtype == np.float32 and np.array_equal(out.targets, ctx.weak_labels)
    assert METHODS["aux_conf"].Config().loss.name == "logconf" and METHODS["naive"].Config().loss.name == "xent"


def test_graph_smooth_corrects_weak_labels_on_separable_features():
    ctx, _ = _context()
    cfg = METHODS["graph_smooth"].Config(knn=10, alpha=0.9)
    out = METHODS["graph_smooth"].build_labels(cfg, ctx)
    d = out.diagnostics
    assert d["label_accuracy_after_smoothing"] > d["weak_label_accuracy_before"] + 0.05
    assert d["flips_correct"] > d["flips_wrong"]
    assert np.allclose(out.targets.sum(1), 1) and out.targets.shape == (120, 2)


def test_selective_with_probes_crossfits_the_weak_reference_and_routes():
    ctx, calls = _context()
    cfg = METHODS["selective"].Config(self_labels="probe", folds=3, weak_folds=3, min_routed=5)
    out = METHODS["selective"].build_labels(cfg, ctx)
    assert len(calls) == 3  # one weak retraining per fold of A
    held = np.concatenate([p for _, p in calls])
    assert sorted(held.tolist()) == list(range(120))  # every row of A labelled out of sample exactly once
    d = out.diagnostics
    assert d["weak_reference"] == "crossfit" and 0 <= d["routed_share"] <= 1
    assert d["final_label_accuracy"] >= d["weak_label_accuracy_before_smoothing"]
    assert out.targets.shape == (120, 2) and np.allclose(out.targets.sum(1), 1, atol=1e-6)


def test_selective_in_sample_reference_never_retrains_the_weak_model():
    def forbidden(*a):
        raise AssertionError("in_sample must reuse the weak model's own predictions on A")

    ctx, _ = _context(fit_weak=forbidden)
    cfg = METHODS["selective"].Config(self_labels="probe", folds=3, weak_reference="in_sample")
    assert METHODS["selective"].build_labels(cfg, ctx).diagnostics["weak_reference"] == "in_sample"


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_declares_what_the_registry_needs(name):
    module = METHODS[name]
    cfg = module.Config()
    assert cfg.name == name and callable(module.build_labels) and (module.__doc__ or "").strip()
    assert getattr(cfg, "validate", lambda: [])() == []


class _FakePrompter:
    """Scores a query by a fixed function of its text (no model); records every scoring pass."""

    def __init__(self, passes):
        self.passes = passes

    def block_log_odds(self, queries, pool, k, block_size, seed, query_pool_idx=None, desc="prompting"):
        self.passes.append((desc, len(queries), k))
        odds = np.array([(-1.0) ** int(q.split()[-1]) * (1 + int(q.split()[-1]) % 7) for q in queries])
        blocks = np.arange(len(queries)) // block_size
        return odds.astype(np.float32), blocks, {"prefix_tokens": 0, "query_tokens": len(queries),
                                                "demos_dropped_for_context": 0}


@pytest.mark.parametrize("diagnostics", ["sample", "full"])
def test_refine_curve_reuses_the_relabelling_at_its_own_k_and_diagnostics_cost_less(diagnostics):
    ctx, _ = _context()
    passes = []
    ctx.prompter = lambda *a, **k: _FakePrompter(passes)
    cfg = METHODS["refine"].Config(shots=4, curve_shots=[0, 4, 8], curve_n=30, prompt_only_n=40,
                                   prompt="{text}", verbalizers=["a", "b"], diagnostics=diagnostics)
    out = METHODS["refine"].build_labels(cfg, ctx)
    d = out.diagnostics
    descs = [p[0] for p in passes]
    assert descs == ["refine: B", "refine: curve k=0", "refine: curve k=8", "refine: prompt-only test"]
    n_b, n_test = len(ctx.texts("transfer")), len(ctx.texts("test"))
    sizes = dict((p[0], p[1]) for p in passes)
    if diagnostics == "sample":
        assert sizes["refine: curve k=0"] == 30 and sizes["refine: prompt-only test"] == 40
        assert 2 * 30 + 40 < n_b  # the diagnostics score fewer prompts than the relabelling
    else:
        assert sizes["refine: curve k=0"] == n_b and sizes["refine: prompt-only test"] == n_test
    own = next(c for c in d["refinement_curve"] if c["shots"] == 4)
    assert own["from_relabelling"] and "block_accuracy_per_block" not in own
    sub = np.random.default_rng(ctx.seed + 3).permutation(n_b)[:own["n"]]
    gold = ctx.labels("transfer")
    assert own["accuracy_per_block"] == pytest.approx(float((out.targets[sub].argmax(1) == gold[sub]).mean()))
    assert set(d["seconds"]) == {"relabel", "curve", "prompt_only"} and d["diagnostics"] == diagnostics
