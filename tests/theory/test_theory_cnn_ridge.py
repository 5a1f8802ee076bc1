"""Theory settings 3a (linear CNN -> two-layer ReLU CNN) and 3b (ridge -> ridge), docs/THEORY.md §3a/§3b.

The data generators, the exactness of the reduced CNN training, one prediction per setting at small scale (fixed
seeds, assertions with margins on direction and size), config validation, and the artefacts (metrics, markdown,
plots). Everything here runs in a few seconds.
"""

import json
import math

import pytest
import torch

from pipeline.errors import UserError
from pipeline.theory import CnnConfig, RidgeConfig, TheoryConfig, cnn, ridge, run
from pipeline.theory.report import check_predictions, make_plots, markdown_section

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def setting3a() -> dict:
    # the default sizes (both regimes), fewer seeds and test draws
    cfg = CnnConfig(n_seeds=4, scarce_seeds=12, n_scarce=[3, 40], n_test=3000, curve_points=12)
    out = cnn.run(cfg, 0, torch.float32, CPU, progress=False)
    out["by_regime"] = {(e["regime"], e["n"]): e for e in out["cnn"]}
    return out


@pytest.fixture(scope="module")
def setting3b() -> dict:
    return ridge.run(RidgeConfig(n_seeds=10, d=100, n_over_d=[0.8, 1.0, 2.0]), 0, torch.float32, CPU, False)


def _student(e: dict, name: str) -> dict:
    return e["students"][name]


def _ridge(entries: list[dict], n_over_d: float, mult: float) -> dict:
    (hit,) = [e for e in entries if e["n_over_d"] == n_over_d and e["teacher_lambda_mult"] == mult]
    return hit


# ---------------------------------------------------------------- setting 3a: data and teacher

def test_patches_have_label_signal_and_orthogonal_label_free_noise():
    cfg = CnnConfig(d=50)
    x = cnn.patches(cfg, 20_000, torch.Generator().manual_seed(0), torch.float64)
    y, hard, signal, noise = x["y"], x["hard"], x["signal"], x["noise"]
    assert signal.shape == noise.shape == (20_000, 50) and y.shape == hard.shape == (20_000,)
    assert set(y.tolist()) == {-1.0, 1.0}
    assert abs(float(hard.double().mean()) - cfg.hard_frac) < 0.02
    # signal patch: y·mu_e on axis 0 (easy) or y·mu_h on axis 1 (hard), nothing else
    assert torch.equal(signal[~hard, 0], y[~hard] * cfg.easy_norm) and bool((signal[~hard, 1:] == 0).all())
    assert torch.equal(signal[hard, 1], y[hard] * cfg.hard_norm) and bool((signal[hard, 0] == 0).all())
    assert bool((signal[:, 2:] == 0).all())
    # noise patch: exactly orthogonal to both signals, N(0, sigma_p^2) on the other axes, independent of y and kind
    assert bool((noise[:, :2] == 0).all())
    assert float(noise[:, 2:].std()) == pytest.approx(cfg.noise_std, rel=0.02)
    assert float((noise[:, 2:] * y[:, None]).mean(0).abs().max()) < 0.04  # 4.5 standard errors
    assert float((noise[hard, 2:].pow(2).mean() - noise[~hard, 2:].pow(2).mean()).abs()) < 0.03


def test_linear_cnn_teacher_gets_easy_points_right_and_a_set_share_of_hard_ones_wrong():
    cfg = CnnConfig(d=50)
    g = torch.Generator().manual_seed(1)
    x = cnn.patches(cfg, 40_000, g, torch.float64)
    w_t = cnn.teacher_weights(cfg, g, torch.float64)
    assert float(w_t[2:].norm()) == pytest.approx(1.0)  # the error direction u is a unit vector of the noise space
    right = torch.sign(cnn.linear_cnn(w_t, x)) == x["y"]
    easy_acc, hard_acc = float(right[~x["hard"]].double().mean()), float(right[x["hard"]].double().mean())
    exact = cnn.teacher_accuracy(cfg)
    assert easy_acc > 0.998 and exact["easy"] > 0.999
    assert hard_acc == pytest.approx(1 - cfg.teacher_hard_err, abs=0.01) and exact["hard"] == 0.7
    assert float(right.double().mean()) == pytest.approx(exact["all"], abs=0.006)
    # its errors are (almost all) the hard points where <u, xi> outweighs the hard signal
    wrong = ~right
    assert int((wrong & x["hard"]).sum()) > 200 * int((wrong & ~x["hard"]).sum())


def test_reduced_training_is_exact_against_explicit_autograd_gd():
    """The Gram-matrix training of cnn.train must be plain GD on the explicit d-dimensional CNN, and its test
    accuracy the explicit model's (up to Monte-Carlo error)."""
    cfg = CnnConfig(d=60, neurons=3, steps=40, n_test=20_000)
    ns, seed, dt = [30, 9], 5, torch.float64
    res = cnn.train(cfg, [cnn.SeedDraws.draw(cfg, 30, seed, dt)], ns, [cfg.steps], CPU, False, "")
    g = torch.Generator().manual_seed(seed)  # the draw order of SeedDraws.draw
    x = cnn.patches(cfg, 30, g, dt)
    w_t = cnn.teacher_weights(cfg, g, dt)
    w0 = cfg.init_std * torch.randn(2 * cfg.neurons, cfg.d, generator=g, dtype=dt)
    jm = torch.cat([torch.ones(cfg.neurons), -torch.ones(cfg.neurons)]).to(dt) / cfg.neurons

    def f(w, xs):
        return (torch.relu(xs["signal"] @ w.T) + torch.relu(xs["noise"] @ w.T)) @ jm

    test = cnn.patches(cfg, 40_000, torch.Generator().manual_seed(99), dt)
    for k, labels in enumerate((torch.sign(cnn.linear_cnn(w_t, x)), x["y"])):  # KINDS: w2s, ceiling
        for v, n in enumerate(ns):
            w = w0.clone().requires_grad_(True)
            xs = {key: t[:n] for key, t in x.items()}
            for _ in range(cfg.steps):
                loss = torch.nn.functional.softplus(-labels[:n] * f(w, xs)).mean()
                (grad,) = torch.autograd.grad(loss, w)
                with torch.no_grad():
                    w -= cfg.lr * grad
            with torch.no_grad():
                assert torch.allclose(f(w, xs), res["output"][0, :n, k, v], atol=1e-9)
                acc = float((torch.sign(f(w, test)) == test["y"]).double().mean())
            assert float(res["acc"][0, k, v, -1]) == pytest.approx(acc, abs=0.012)


# ---------------------------------------------------------------- setting 3a: prediction P13 at small scale

def test_data_abundant_student_corrects_the_teacher_early_then_degrades(setting3a):
    e = setting3a["by_regime"][("abundant", 400)]
    t = e["teacher_acc"]
    assert e["abundance"] == pytest.approx(9.0) and t == pytest.approx(0.85, abs=1e-3)
    assert e["w2s_acc_peak"] > t + 0.08 and e["w2s_peak_step"] <= 50  # early label correction
    assert e["w2s_corrected_peak"] > 0.8  # most of the teacher's hard-point errors are fixed at the peak
    assert e["w2s_drop"] > 0.035 and e["w2s_drop_ge_0p01_frac"] == 1.0  # overtraining costs accuracy...
    assert e["w2s_corrected_final"] < e["w2s_corrected_peak"] - 0.1
    assert e["w2s_fit_wrong"] > 0.99  # ...as the student memorises the teacher's errors
    assert e["ceiling_drop"] < 0.002 and e["ceiling_acc_final"] > 0.99  # ground-truth labels: no degradation
    assert e["w2s_acc_final"] > t  # still above the teacher after 500 steps


def test_data_scarce_overfitting_turns_from_harmful_to_benign_with_n(setting3a):
    small, large = setting3a["by_regime"][("scarce", 3)], setting3a["by_regime"][("scarce", 40)]
    t = small["teacher_acc"]
    assert small["abundance"] < 0.1 and 0.5 < large["abundance"] < 1
    for e in (small, large):
        assert e["n_seeds"] == 12 and e["w2s_fit"] > 0.99  # both interpolate their weak labels
        assert e["w2s_acc_peak"] is None  # measured at the end of training only
    assert large["w2s_fit_wrong"] > 0.99  # including the teacher's errors
    assert small["w2s_acc_final"] < t - 0.07  # harmful: below the teacher
    assert large["w2s_acc_final"] > t + 0.015  # benign: above it
    assert large["ceiling_acc_final"] > large["w2s_acc_final"] + 0.05


def test_p13_holds_at_small_scale_and_reacts_to_bad_numbers(setting3a):
    metrics = {"cnn": setting3a["cnn"]}
    assert {p["id"]: p["held"] for p in check_predictions(metrics)}["P13"] is True
    for key, value in (("ceiling_drop", 0.03), ("w2s_drop", 0.005), ("w2s_acc_peak", 0.86)):
        broken = json.loads(json.dumps(metrics))
        broken["cnn"][-1][key] = value
        assert {p["id"]: p["held"] for p in check_predictions(broken)}["P13"] is False, key
    broken = json.loads(json.dumps(metrics))
    broken["cnn"][0]["w2s_acc_final"] = 0.9  # no harmful overfitting at the smallest n
    assert {p["id"]: p["held"] for p in check_predictions(broken)}["P13"] is False
    broken["cnn"][-1]["abundance"] = 0.5  # no data-abundant run: the prediction cannot be checked
    p13 = {p["id"]: p for p in check_predictions(broken)}["P13"]
    assert p13["held"] is None and p13["text"].startswith("not run")


def test_seed_results_do_not_depend_on_how_many_seeds_run():
    small = dict(d=60, n_abundant=40, n_scarce=[4], steps=30, n_test=500, curve_points=4)
    one = cnn.run(CnnConfig(n_seeds=1, scarce_seeds=1, **small), 3, torch.float32, CPU, False)["cnn"]
    two = cnn.run(CnnConfig(n_seeds=2, scarce_seeds=3, **small), 3, torch.float32, CPU, False)["cnn"]
    for a, b in zip(one, two):
        assert a["per_seed"]["w2s_acc_final"][0] == pytest.approx(b["per_seed"]["w2s_acc_final"][0], abs=1e-6)
    assert len(two[0]["per_seed"]["w2s_acc_final"]) == 3 and len(two[1]["per_seed"]["w2s_acc_final"]) == 2


# ---------------------------------------------------------------- setting 3b: ridge

def test_ridge_draws_and_closed_forms():
    cfg = RidgeConfig(d=40, n_over_d=[0.5, 1.0, 1.5])
    data = ridge.draw(cfg, 0)
    _, n_s, k = ridge.sizes(cfg)
    assert data["x"].shape == (60, 40) and data["x_student"].shape == (n_s, 40) == (80, 40)
    assert float(data["beta"].norm()) == pytest.approx(1.0) and bool((data["beta"][k:] == 0).all())
    x, y = data["x"], data["y"]
    assert float((y - x @ data["beta"]).std()) == pytest.approx(cfg.noise_std, rel=0.25)
    # lambda = 0: interpolation below n = d (min-norm = pinv), OLS above; lambda > 0: the ridge normal equations
    b = ridge.teacher(x[:20], y[:20], [0.0])[0]
    assert torch.allclose(b, torch.linalg.pinv(x[:20]) @ y[:20], atol=1e-10)
    b = ridge.teacher(x, y, [0.0, 0.3])
    assert torch.allclose(b[0], torch.linalg.lstsq(x, y).solution, atol=1e-10)
    direct = torch.linalg.solve(x.T @ x / 60 + 0.3 * torch.eye(40, dtype=x.dtype), x.T @ y / 60)
    assert torch.allclose(b[1], direct, atol=1e-10)
    # penalties: isotropic, small on beta*'s support, small on disjoint axes
    gam = ridge.penalties(cfg)
    assert bool((gam[0] == 1).all()) and bool((gam[1, :k] == cfg.weight_low).all()) and bool((gam[1, k:] == 1).all())
    assert bool((gam[2, :k] == 1).all()) and int((gam[2] < 1).sum()) == k
    # the student: weighted ridge on the teacher's labels, against a direct solve; tiny lambda_S copies the teacher
    ev, q = ridge.student_operators(data["x_student"], gam)
    grid = torch.tensor([1e-9, 0.7], dtype=torch.float64)
    errs = ridge.student_errors(b[1:], data["beta"], gam, ev, q, grid)  # (1, 3, 2)
    xs = data["x_student"]
    sigma = xs.T @ xs / n_s
    for p in range(3):
        direct = torch.linalg.solve(sigma + 0.7 * torch.diag(gam[p]), sigma @ b[1])
        assert float(errs[0, p, 1]) == pytest.approx(float((direct - data["beta"]).pow(2).sum()), rel=1e-8)
        assert float(errs[0, p, 0]) == pytest.approx(float((b[1] - data["beta"]).pow(2).sum()), rel=1e-6)


def test_lambda_opt_is_the_best_teacher_strength():
    cfg = RidgeConfig(d=100, n_over_d=[1.0], teacher_lambdas=[0.3, 1.0, 3.0], n_seeds=10)
    entries = ridge.run(cfg, 0, torch.float32, CPU, False)["ridge"]
    err = {e["teacher_lambda_mult"]: e["teacher_err"] for e in entries}
    assert err[1.0] < err[0.3] and err[1.0] < err[3.0]
    assert entries[0]["lambda_opt"] == pytest.approx(0.25)


def test_student_compensates_an_under_regularised_teacher_near_the_peak(setting3b):
    for ratio in (0.8, 1.0):
        e = _ridge(setting3b["ridge"], ratio, 0.0)
        iso = _student(e, "isotropic")
        assert iso["beats_teacher_frac"] == 1.0 and iso["gain_median"] > 0.3 and iso["gain_min"] > 0.1
        assert iso["lambda_best_median"] > 0.1  # the compensation is a genuine ridge, not lambda_S -> 0
    assert _ridge(setting3b["ridge"], 1.0, 0.0)["teacher_err"] > 10  # the interpolation peak
    # far from the peak the gain is small (under-parameterised teacher: OLS is already decent)
    assert _student(_ridge(setting3b["ridge"], 2.0, 0.0), "isotropic")["gain_median"] < 0.25


def test_tuned_teacher_is_improved_only_by_an_aligned_weighted_student(setting3b):
    for ratio in (0.8, 1.0, 2.0):
        e = _ridge(setting3b["ridge"], ratio, 1.0)
        assert e["teacher_err"] == pytest.approx(e["teacher_err_opt"])
        assert abs(_student(e, "isotropic")["gain_median"]) < 0.005
        assert abs(_student(e, "misaligned")["gain_median"]) < 0.005
        aligned = _student(e, "aligned")
        assert aligned["beats_teacher_frac"] == 1.0 and aligned["gain_median"] > 0.15


def test_p14_holds_at_small_scale_and_reacts_to_bad_numbers(setting3b):
    metrics = {"ridge": setting3b["ridge"]}
    assert {p["id"]: p["held"] for p in check_predictions(metrics)}["P14"] is True
    for ratio, mult, student, key, value in ((1.0, 0.0, "isotropic", "gain_median", 0.1),
                                             (1.0, 1.0, "isotropic", "gain_median", 0.1),
                                             (2.0, 1.0, "aligned", "beats_teacher_frac", 0.5),
                                             (0.8, 1.0, "misaligned", "gain_median", 0.2)):
        broken = json.loads(json.dumps(metrics))
        _student(_ridge(broken["ridge"], ratio, mult), student)[key] = value
        assert {p["id"]: p["held"] for p in check_predictions(broken)}["P14"] is False, (ratio, mult, student, key)
    only_tuned = {"ridge": [e for e in setting3b["ridge"] if e["teacher_lambda_mult"] == 1.0]}
    p14 = {p["id"]: p for p in check_predictions(only_tuned)}["P14"]
    assert p14["held"] is None and p14["text"].startswith("not run")


# ---------------------------------------------------------------- config contract

def test_bad_cnn_and_ridge_values_are_all_reported():
    cfg = TheoryConfig()
    cfg.cnn.teacher_hard_err = 0.5
    cfg.cnn.d = 2
    cfg.cnn.n_scarce = [4, 4, 0]
    cfg.cnn.hard_norm = math.nan
    cfg.ridge.support_frac = 0.6
    cfg.ridge.lambda_max = 1e-5
    cfg.ridge.n_over_d = [0.001]
    cfg.ridge.teacher_lambdas = [-1.0]
    errors = cfg.validate()
    assert "theory.cnn.teacher_hard_err: must be in (0, 0.5), got 0.5" in errors
    assert "theory.cnn.d: must be >= 3, got 2" in errors
    assert "theory.cnn.n_scarce[2]: must be >= 1, got 0" in errors
    assert "theory.cnn.n_scarce: each size once, got [4, 4, 0]" in errors
    assert "theory.ridge.support_frac: must be in (0, 0.5], got 0.6" in errors
    assert "theory.ridge.lambda_max: must be > lambda_min = 0.0001, got 1e-05" in errors
    for key in ("theory.cnn.hard_norm", "theory.ridge.n_over_d", "theory.ridge.teacher_lambdas[0]"):
        assert any(e.startswith(key) for e in errors), (key, errors)
    assert len(errors) == 9
    assert CnnConfig().n_scarce == [3, 6, 12, 24, 40] and TheoryConfig().validate() == []


def test_run_refuses_an_invalid_cnn_config(tmp_path):
    cfg = TheoryConfig()
    cfg.cnn.n_scarce = []
    with pytest.raises(UserError, match="theory.cnn.n_scarce"):
        run(cfg, tmp_path, progress=False)
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- artefacts

def test_metrics_markdown_and_plots_carry_the_new_settings(setting3a, setting3b, tmp_path):
    metrics = {"cnn": setting3a["cnn"], "ridge": setting3b["ridge"]}
    metrics["predictions"] = check_predictions(metrics)
    assert [p["id"] for p in metrics["predictions"]][-2:] == ["P13", "P14"]
    assert make_plots(metrics, tmp_path) == ["cnn_accuracy.png", "ridge_student_error.png"]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("cnn_accuracy.png", "ridge_student_error.png"))
    text = markdown_section(metrics, rel_dir="theory")
    assert "Four synthetic weak-to-strong settings" in text
    assert "- P13 held: abundant n = 400" in text and "- P14 held: lambda_T = 0" in text
    assert "### Setting 3a: linear CNN -> two-layer ReLU CNN" in text and "### Setting 3b: ridge regression" in text
    assert "| abundant | 400 | 9.00 | 0.850 |" in text and "| scarce | 3 |" in text
    assert "| 1 | 0 |" in text and "| 1 | 1 |" in text
    assert "](theory/cnn_accuracy.png)" in text and "](theory/ridge_student_error.png)" in text
    assert "arXiv 2510.24812" in text and "arXiv 2505.18346" in text


def test_run_writes_the_new_entries_to_metrics_json(tmp_path):
    cfg = TheoryConfig()
    cfg.two_layer.enabled = cfg.logistic.enabled = False
    cfg.cnn = CnnConfig(n_seeds=2, scarce_seeds=2, d=80, n_abundant=60, n_scarce=[3, 6], steps=40, n_test=500,
                        curve_points=6)
    cfg.ridge = RidgeConfig(n_seeds=3, d=30, n_over_d=[1.0], lambda_points=7)
    m = run(cfg, tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn_accuracy.png", "metrics.json",
                                                         "ridge_student_error.png"]
    assert set(on_disk["timings_s"]) == {"cnn", "ridge"} and on_disk["plots"] == ["cnn_accuracy.png",
                                                                                  "ridge_student_error.png"]
    assert [(e["regime"], e["n"]) for e in on_disk["cnn"]] == [("scarce", 3), ("scarce", 6), ("abundant", 60)]
    e = on_disk["cnn"][-1]
    for key in ("abundance", "benign_ratio", "teacher_acc", "teacher_easy_acc", "teacher_hard_acc", "weak_label_acc",
                "w2s_acc_peak", "w2s_peak_step", "w2s_acc_final", "w2s_drop", "w2s_drop_ge_0p01_frac",
                "w2s_peak_above_teacher_frac", "w2s_fit", "w2s_fit_wrong", "w2s_corrected_peak",
                "w2s_corrected_final", "ceiling_acc_peak", "ceiling_acc_final", "ceiling_drop", "curve", "per_seed"):
        assert key in e, key
    assert len(e["curve"]["step"]) == len(e["curve"]["w2s_acc"]) == len(e["curve"]["ceiling_acc"])
    assert e["curve"]["step"][0] == 0 and e["curve"]["step"][-1] == 40
    r = on_disk["ridge"]
    assert [(x["n_over_d"], x["teacher_lambda_mult"]) for x in r] == [(1.0, 0.0), (1.0, 1.0)]
    assert set(r[0]["students"]) == {"isotropic", "aligned", "misaligned"}
    assert len(r[0]["students"]["aligned"]["curve"]["lambda"]) == 7
    preds = {p["id"]: p for p in on_disk["predictions"]}
    assert preds["P1"]["held"] is None and preds["P13"]["held"] is not None and preds["P14"]["held"] is not None
