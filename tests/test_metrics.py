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


# ------------------------------------------------------------------ pooling over training seeds

def _seed(y, rng, strengths):
    return (y, {name: _scores(y, s, rng) for name, s in strengths.items()})


def test_pooled_point_values_are_seed_means_and_pgr_is_ratio_of_mean_gaps():
    from pipeline.metrics import evaluate_seeds

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 800)
    per_seed = {s: _seed(y, rng, {"weak": 0.2, "ceiling": 0.8, "t": t}) for s, t in ((0, 0.3), (1, 0.5), (2, 0.7))}
    out = evaluate_seeds(per_seed, "weak", "ceiling", n_boot=200)
    acc = {(n, s): float(((np.asarray(p) > 0.5) == y).mean()) for s, (_, ps) in per_seed.items() for n, p in ps.items()}
    for n in ("weak", "ceiling", "t"):
        vals = [acc[n, s] for s in (0, 1, 2)]
        got = out["models"][n]["accuracy"]
        assert got["value"] == pytest.approx(sum(vals) / 3)
        assert got["per_seed"] == pytest.approx(vals)
        mean = sum(vals) / 3
        assert got["std"] == pytest.approx((sum((v - mean) ** 2 for v in vals) / 2) ** 0.5)
    m = {n: sum(acc[n, s] for s in (0, 1, 2)) / 3 for n in ("weak", "ceiling", "t")}
    pgr = out["pgr"]["t"]["accuracy"]
    assert pgr["value"] == pytest.approx((m["t"] - m["weak"]) / (m["ceiling"] - m["weak"]))
    per = [(acc["t", s] - acc["weak", s]) / (acc["ceiling", s] - acc["weak", s]) for s in (0, 1, 2)]
    assert pgr["per_seed"] == pytest.approx(per)
    assert pgr["mean_of_seeds"] == pytest.approx(sum(per) / 3)
    assert per[0] < pgr["value"] < per[2]  # the transfer's strength grows with the seed here


def test_pooled_interval_carries_seed_noise_and_reduces_to_paired_bootstrap_for_identical_seeds():
    from pipeline.metrics import evaluate_seeds

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 3000)
    base = _seed(y, rng, {"weak": 0.2, "ceiling": 0.8, "t": 0.5})
    single = evaluate_predictions(y, base[1], "weak", "ceiling", n_boot=300)
    same = evaluate_seeds({0: base, 1: base, 2: base}, "weak", "ceiling", n_boot=300)
    # identical seeds: drawing seeds changes nothing, so the pooled interval is the one-seed interval
    assert same["pgr"]["t"]["accuracy"]["ci95"] == pytest.approx(single["pgr"]["t"]["accuracy"]["ci95"])
    assert same["models"]["t"]["accuracy"]["std"] == 0
    # seeds whose transfer quality differs: the interval must widen beyond test-resampling noise
    spread = {s: _seed(y, rng, {"weak": 0.2, "ceiling": 0.8, "t": t}) for s, t in enumerate((0.25, 0.5, 0.75))}
    wide = evaluate_seeds(spread, "weak", "ceiling", n_boot=300)
    width = lambda e: e["ci95"][1] - e["ci95"][0]  # noqa: E731
    assert width(wide["pgr"]["t"]["accuracy"]) > 2 * width(single["pgr"]["t"]["accuracy"])
    assert width(wide["models"]["t"]["accuracy"]) > 2 * width(single["models"]["t"]["accuracy"])


def test_method_on_a_subset_of_seeds_is_compared_with_the_same_seeds():
    from pipeline.metrics import evaluate_seeds

    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 1000)
    per_seed = {0: _seed(y, rng, {"weak": 0.2, "ceiling": 0.8, "t": 0.5}),
                1: _seed(y, rng, {"weak": 0.5, "ceiling": 0.9})}  # t did not run on seed 1
    out = evaluate_seeds(per_seed, "weak", "ceiling", n_boot=200)
    assert out["models"]["t"]["seeds"] == [0] and out["models"]["weak"]["seeds"] == [0, 1]
    alone = evaluate_predictions(*per_seed[0], "weak", "ceiling", n_boot=200)
    assert out["pgr"]["t"]["accuracy"]["value"] == pytest.approx(alone["pgr"]["t"]["accuracy"]["value"])
    with pytest.raises(ValueError, match="every seed"):
        evaluate_seeds({0: per_seed[0], 1: (y, {"weak": per_seed[1][1]["weak"]})}, "weak", "ceiling", n_boot=100)


def test_paired_comparison_with_itself_is_exactly_zero_and_respects_seed_subsets():
    from pipeline.metrics import evaluate_seeds

    rng = np.random.default_rng(3)
    per_seed = {}
    for s in (0, 1, 2):
        y = rng.integers(0, 2, 300)
        probs = {name: _scores(y, k, rng) for name, k in (("weak", 0.2), ("ceiling", 0.8), ("naive", 0.4))}
        probs["same"] = probs["naive"].copy()
        probs["better"] = _scores(y, 0.7, rng)
        if s != 1:
            probs["few"] = _scores(y, 0.6, rng)
        per_seed[s] = (y, probs)
    out = evaluate_seeds(per_seed, "weak", "ceiling", n_boot=300, baseline="naive")
    vs = out["vs_baseline"]
    assert out["baseline"] == "naive" and set(vs) == {"same", "better", "few"}
    for kind in ("accuracy", "auroc", "pgr_accuracy", "pgr_auroc"):
        assert vs["same"][kind]["value"] == 0 and vs["same"][kind]["ci95"] == [0.0, 0.0], kind
    assert vs["same"]["verdict"] == "unclear" and vs["better"]["verdict"] == "better"
    assert vs["better"]["accuracy"]["better_on_seeds"] == 3
    acc = {k: out["models"][k]["accuracy"]["value"] for k in ("naive", "better")}
    assert vs["better"]["accuracy"]["value"] == pytest.approx(acc["better"] - acc["naive"])
    # a method on seeds 0 and 2 only is compared with naive on those seeds
    few = vs["few"]
    assert few["seeds"] == [0, 2]
    naive_02 = np.mean([out["models"]["naive"]["accuracy"]["per_seed"][i] for i in (0, 2)])
    assert few["accuracy"]["value"] == pytest.approx(out["models"]["few"]["accuracy"]["value"] - naive_02)
    assert evaluate_seeds(per_seed, "weak", "ceiling", n_boot=100).get("vs_baseline") is None


def test_paired_interval_covers_the_true_difference_and_is_narrower_than_unpaired():
    """Correlated correctness (both methods get the easy examples right): the true accuracy difference is
    -0.05; the paired 95% interval should cover it about 95% of the time, and be far narrower than
    treating the two accuracies as independent."""
    from pipeline.metrics import evaluate_seeds

    rng = np.random.default_rng(0)
    covered, ratios = 0, []
    reps, n = 200, 300
    for r in range(reps):
        u, v, w = rng.random(n), rng.random(n), rng.random(n)
        a = u < 0.8
        b = (u < 0.7) | ((u >= 0.7) & (v < 0.5))  # P(b) = 0.85, P(a) = 0.8
        probs = {"weak": (w < 0.6).astype(float), "ceiling": (w < 0.95).astype(float),
                 "naive": b.astype(float), "m": a.astype(float)}
        out = evaluate_seeds({0: (np.ones(n, dtype=int), probs)}, "weak", "ceiling", n_boot=400, seed=r,
                             kinds=("accuracy",), baseline="naive")
        lo, hi = out["vs_baseline"]["m"]["accuracy"]["ci95"]
        covered += lo <= -0.05 <= hi
        wa, wb = (np.diff(out["models"][k]["accuracy"]["ci95"])[0] for k in ("m", "naive"))
        ratios.append((hi - lo) / np.hypot(wa, wb))
    assert 0.89 <= covered / reps <= 0.99
    assert np.median(ratios) < 0.75


def test_ece_by_hand_and_temperature_scaling_recovers_a_known_temperature():
    from pipeline.metrics.calibration import ece, fit_temperature, temper

    # two bins used: confidence 0.9 (4 examples, 3 right) and 0.6 (2 examples, both right)
    p1 = np.array([0.9, 0.9, 0.1, 0.9, 0.6, 0.4])
    y = np.array([1, 1, 0, 0, 1, 0])
    probs = np.c_[1 - p1, p1]
    assert ece(probs, y) == pytest.approx((4 * abs(0.75 - 0.9) + 2 * abs(1.0 - 0.6)) / 6)
    # labels drawn from calibrated probabilities, shown sharpened by T = 2.5: the fit undoes it
    rng = np.random.default_rng(0)
    true = rng.uniform(0.05, 0.95, 20000)
    labels = (rng.random(20000) < true).astype(int)
    sharp = temper(np.c_[1 - true, true], 1 / 2.5)
    t = fit_temperature(sharp, labels)
    assert t == pytest.approx(2.5, rel=0.06)
    assert ece(temper(sharp, t), labels) < 0.02 < ece(sharp, labels)
    assert np.allclose(temper(sharp, 1.0), sharp, atol=1e-5)


def test_two_weak_settings_compared_paired_self_is_zero_and_pgr_uses_each_settings_weak_model():
    """Two weak-to-strong settings (say a linear-probe weak model and a fine-tuned one) under one ceiling:
    Δ of weak, student and PGR, the same resamples for both; each PGR uses its own weak model."""
    from pipeline.metrics import compare_settings, evaluate_seeds

    rng = np.random.default_rng(5)
    per_seed = {}
    for s in (0, 1, 2):
        y = rng.integers(0, 2, 400)
        probs = {name: _scores(y, k, rng) for name, k in (("ceiling", 0.9), ("head/weak", 0.3), ("head/naive", 0.7),
                                                          ("full/weak", 0.35), ("full/naive", 0.35))}
        per_seed[s] = (y, probs)
    same = compare_settings(per_seed, ("head/weak", "head/naive"), ("head/weak", "head/naive"), "ceiling",
                            n_boot=300)
    for part in ("weak", "student", "pgr"):
        assert same[part]["value"] == 0 and same[part]["ci95"] == [0.0, 0.0], part
    out = compare_settings(per_seed, ("head/weak", "head/naive"), ("full/weak", "full/naive"), "ceiling", n_boot=300)
    ev = {w: evaluate_seeds({s: (y, {"weak": p[f"{w}/weak"], "ceiling": p["ceiling"], "naive": p[f"{w}/naive"]})
                             for s, (y, p) in per_seed.items()}, "weak", "ceiling", n_boot=300)
          for w in ("head", "full")}
    pgr = {w: ev[w]["pgr"]["naive"]["accuracy"]["value"] for w in ev}
    assert out["pgr"]["value"] == pytest.approx(pgr["full"] - pgr["head"])
    assert out["student"]["value"] == pytest.approx(ev["full"]["models"]["naive"]["accuracy"]["value"]
                                                    - ev["head"]["models"]["naive"]["accuracy"]["value"])
    assert out["verdict"] == "worse" and out["pgr"]["ci95"][1] < 0 and out["seeds"] == [0, 1, 2]
