"""Theory stage (shared/THEORY.md): the predicted effects at small scale, the config contract, the artefacts.

Setting 1 runs at its real sizes with 3 seeds (about 2 s); setting 2 with 10 pairs per configuration. Settings 3a
and 3b have their own file (test_theory_cnn_ridge.py); here they only appear, tiny, in the end-to-end runs.
Assertions are on direction and size of effects, with margins, never on exact floats.
"""

import dataclasses
import json
import typing
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.errors import UserError
from pipeline.theory import (
    CnnConfig,
    LogisticConfig,
    RidgeConfig,
    TheoryConfig,
    TwoLayerConfig,
    logistic,
    run,
    two_layer,
)
from pipeline.theory.report import check_predictions, make_plots, markdown_section

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "theory.yaml"
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def setting1() -> dict:
    cfg = TwoLayerConfig(n_seeds=3, rhos=[0.0, 0.8], ablation_seeds=2)
    out = two_layer.run(cfg, 0, torch.float32, CPU, progress=False)
    out["by_rho"] = {e["rho"]: e for e in out["two_layer"]}
    return out


@pytest.fixture(scope="module")
def setting2() -> dict:
    out = logistic.run(LogisticConfig(n_pairs=10), 0, torch.float32, CPU, progress=False)
    return {"logistic": out["logistic"]}


def _find(entries: list[dict], **params) -> dict:
    (hit,) = [e for e in entries if all(e[k] == v for k, v in params.items())]
    return hit


def tiny_config(seed: int = 0) -> TheoryConfig:
    two = TwoLayerConfig(n_seeds=2, rhos=[0.0, 0.8], steps=300, n_transfer=2000, n_test=2000, n_pretrain=2000,
                         ablation_seeds=1)
    lg = LogisticConfig(n_pairs=4, steps=40, early_step=10, gammas=[0.0, 0.95], c_teachers=[0.6],
                        init_norms=[0.1, 1.0])
    cn = CnnConfig(n_seeds=2, scarce_seeds=2, d=80, n_abundant=60, n_scarce=[3, 6], steps=40, n_test=500,
                   curve_points=6)
    rg = RidgeConfig(n_seeds=3, d=30, n_over_d=[1.0], lambda_points=7)
    return TheoryConfig(seed=seed, two_layer=two, logistic=lg, cnn=cn, ridge=rg)


# ---------------------------------------------------------------- setting 1: feature elicitation (arXiv 2605.12908)

def test_w2s_student_beats_weak_teacher_in_calibrated_error(setting1):
    for e in setting1["two_layer"]:
        weak, w2s = e["per_seed"]["weak_err_cal"], e["per_seed"]["w2s_err_cal"]
        assert all(s < w - 0.05 for s, w in zip(w2s, weak)), (e["rho"], weak, w2s)
        assert 0.15 <= e["pgr_cal_median"] <= 0.6
        assert e["ceiling_err_cal"] < 0.05


def test_weak_teacher_is_the_specified_one(setting1):
    e = setting1["by_rho"][0.0]
    assert 0.8 < e["weak_cos"] < 0.95  # THEORY.md §1.3: cos(v, u_0) ≈ 0.86
    assert 0.35 < e["weak_err_cal"] < 0.55
    assert 0.02 < e["off_err_pre"] < 0.07  # pretrained off-target heads: rel. error ≈ 0.04


def test_no_forgetting_without_correlation(setting1):
    e = setting1["by_rho"][0.0]
    assert e["retention_w2s"] >= 0.98 and e["retention_sft"] >= 0.98


def test_sft_forgets_correlated_skills_more_than_w2s(setting1):
    e = setting1["by_rho"][0.8]
    assert e["retention_sft"] <= 0.85 and e["retention_w2s"] >= 0.88
    for w2s, sft in zip(e["per_seed"]["retention_w2s"], e["per_seed"]["retention_sft"]):
        assert w2s > sft + 0.05
    # geometric: SFT pulls off-target neurons out of their own subspaces
    assert e["subspace_frac_sft"] < e["subspace_frac_w2s"] - 0.02


def test_student_learns_the_target_direction(setting1):
    e = setting1["by_rho"][0.0]
    assert e["target_align_pre"] == pytest.approx(0.3)
    assert e["target_align_w2s"] >= 0.40 and e["target_align_sft"] >= 0.5


def test_ablation_without_latent_knowledge_stays_at_the_saddle(setting1):
    a, main = setting1["two_layer_ablation"], setting1["by_rho"][0.0]
    assert a["alpha_target"] == 0.0 and a["n_seeds"] == 2
    assert a["target_align_w2s"] < 0.15 and a["target_align_sft"] < 0.15
    assert a["ceiling_err_cal"] > main["ceiling_err_cal"]
    assert a["retention_sft"] < 0.98  # SFT must now recruit other neurons


def test_seed_results_do_not_depend_on_how_many_seeds_run():
    small = dict(rhos=[0.5], steps=200, n_transfer=1000, n_test=1000, n_pretrain=1000, ablation=False)
    one = two_layer.run(TwoLayerConfig(n_seeds=1, **small), 7, torch.float32, CPU, False)["two_layer"][0]
    two = two_layer.run(TwoLayerConfig(n_seeds=2, **small), 7, torch.float32, CPU, False)["two_layer"][0]
    for key in ("w2s_err_cal", "retention_sft", "target_align_w2s"):
        assert one["per_seed"][key][0] == pytest.approx(two["per_seed"][key][0], abs=1e-5)
    assert two["per_seed"]["w2s_err_cal"][0] != two["per_seed"]["w2s_err_cal"][1]


# ---------------------------------------------------------------- setting 2: linear logistic (arXiv 2605.05742)

def test_exact_test_error_matches_monte_carlo():
    cfg = LogisticConfig()
    lam = logistic.spectrum(cfg, "anisotropic", torch.float64)
    w = torch.randn(cfg.d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(200_000, cfg.d, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * lam.sqrt()
    disagree = ((x @ w > 0) != (x[:, 0] > 0)).double().mean()
    assert float(logistic.test_error(w, lam)) == pytest.approx(float(disagree), abs=0.004)


def test_anisotropic_spectrum_keeps_unit_variance_on_target():
    lam = logistic.spectrum(LogisticConfig(), "anisotropic", torch.float64)
    assert lam[0] == 1.0 and float(lam.mean()) == pytest.approx(1.0)
    assert bool((lam[1:-1] > lam[2:]).all())  # power law over the other directions


def test_best_along_path_beats_both_only_with_independent_errors(setting2):
    es = setting2["logistic"]
    independent = _find(es, gamma=0.0, c_teacher=0.6, init_norm=1.0, covariance="isotropic", label_type="soft")
    aligned = _find(es, gamma=0.95, covariance="isotropic", label_type="soft")
    assert independent["frac_beats_both"] >= 0.9
    assert independent["err_best"] < independent["err_init"] - 0.01
    assert aligned["condition_margin"] < 0 < independent["condition_margin"]
    assert aligned["frac_beats_both"] <= 0.1


def test_converged_student_equals_teacher(setting2):
    for e in setting2["logistic"]:
        if e["label_type"] == "soft":
            assert e["final_teacher_gap_max"] <= 0.005
            assert e["frac_final_beats_teacher"] == 0.0


def test_init_norm_controls_whether_and_how_long_the_gain_lasts(setting2):
    by_norm = {e["init_norm"]: e for e in setting2["logistic"] if "init_norm" in e["sweeps"]}
    assert by_norm[0.1]["frac_beats_both"] <= 0.1
    assert by_norm[1.0]["frac_beats_both"] >= 0.9
    assert by_norm[1.0]["frac_beats_both_at_t"] <= 0.1
    assert by_norm[10.0]["frac_beats_both_at_t"] >= 0.7


def test_anisotropy_reduces_the_w2s_fraction(setting2):
    iso = _find(setting2["logistic"], gamma=0.0, c_teacher=0.6, init_norm=1.0, covariance="isotropic",
                label_type="soft")
    aniso = _find(setting2["logistic"], covariance="anisotropic", label_type="soft")
    assert aniso["frac_beats_both"] < iso["frac_beats_both"] - 0.3


def test_setups_are_deduplicated_and_tagged():
    setups = logistic.setups(LogisticConfig())
    assert len(setups) == len(set(setups)) == 14
    base = [s for s in setups if len(s.sweeps) > 1]
    assert len(base) == 1 and set(base[0].sweeps) == {"gamma", "c_teacher", "init_norm", "covariance"}


# ---------------------------------------------------------------- predictions and report

def test_predictions_hold_at_small_scale_and_react_to_bad_numbers(setting1, setting2):
    metrics = {**setting1, **setting2, "config": {"logistic": {"steps": 300}}}
    preds = {p["id"]: p for p in check_predictions(metrics)}
    assert list(preds) == [f"P{i}" for i in range(1, 15)]
    assert preds["P13"]["held"] is None and preds["P14"]["held"] is None  # settings 3a/3b not in these metrics
    for pid in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P9", "P10", "P11", "P12"):
        assert preds[pid]["held"] is True, preds[pid]["text"]

    broken = json.loads(json.dumps(metrics))
    high = next(e for e in broken["two_layer"] if e["rho"] == 0.8)
    high["retention_sft"] = 0.95  # SFT no longer forgets
    assert {p["id"]: p["held"] for p in check_predictions(broken)}["P4"] is False


def test_predictions_are_null_for_settings_not_run():
    preds = check_predictions({"two_layer": [], "two_layer_ablation": None, "logistic": [], "cnn": [], "ridge": []})
    assert all(p["held"] is None and p["text"].startswith("not run") for p in preds)


# ---------------------------------------------------------------- config contract

def test_defaults_validate_and_bad_values_are_all_reported():
    assert TheoryConfig().validate() == []
    cfg = TheoryConfig(device="gpu0")
    cfg.two_layer.rhos = [0.0, 1.5]
    cfg.two_layer.n_seeds = 0
    cfg.two_layer.d = 16  # 4 tasks x 8 dims do not fit
    cfg.logistic.covariances = ["isotropic", "anisotropc"]
    cfg.logistic.early_step = 500
    errors = cfg.validate()
    assert "theory.two_layer.rhos[1]: must be in [-1, 1], got 1.5" in errors
    for key in ("theory.device", "theory.two_layer.n_seeds", "theory.two_layer.d", "theory.logistic.covariances[1]",
                "theory.logistic.early_step"):
        assert any(e.startswith(key + ":") for e in errors), (key, errors)
    assert len(errors) == 6


def test_run_refuses_an_invalid_config(tmp_path):
    cfg = TheoryConfig()
    cfg.logistic.lr = -1.0
    with pytest.raises(UserError, match="theory.logistic.lr"):
        run(cfg, tmp_path, progress=False)
    assert not (tmp_path / "metrics.json").exists()


ALLOWED = {bool, int, float, str, list[int], list[float], list[str]}


def _allowed(tp) -> bool:
    if tp in ALLOWED or dataclasses.is_dataclass(tp):
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if origin is typing.Union:
        return type(None) in args and all(_allowed(a) for a in args if a is not type(None))
    return False


@pytest.mark.parametrize("cls", [TheoryConfig, TwoLayerConfig, LogisticConfig, CnnConfig, RidgeConfig])
def test_config_fields_have_help_defaults_and_loader_types(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
        assert _allowed(f.type), (f.name, f.type)


def test_recipe_writes_out_the_defaults():
    recipe = yaml.safe_load(RECIPE.read_text())
    assert set(recipe) == {"name", "output_dir", "theory"} and recipe["name"] == "theory"
    assert recipe["theory"] == dataclasses.asdict(TheoryConfig())
    assert "w2s theory recipes/theory.yaml" in RECIPE.read_text().splitlines()[1]


# ---------------------------------------------------------------- the stage end to end

def test_run_writes_metrics_plots_and_is_deterministic(tmp_path):
    first = run(tiny_config(), tmp_path / "a", progress=False)
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(first))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "cnn_accuracy.png", "logistic_error_curves.png", "metrics.json", "retention_vs_rho.png",
        "ridge_student_error.png"]  # no temp file left behind

    e = on_disk["two_layer"][0]
    for key in ("rho", "weak_err", "weak_err_cal", "w2s_err", "w2s_err_cal", "ceiling_err", "ceiling_err_cal",
                "pgr_cal_median", "pgr_cal_min", "w2s_beats_weak_frac", "retention_w2s", "retention_sft",
                "subspace_frac_w2s", "subspace_frac_sft", "target_align_pre", "target_align_w2s", "target_align_sft",
                "n_seeds", "per_seed"):
        assert key in e, key
    assert on_disk["two_layer_ablation"]["n_seeds"] == 1
    g = on_disk["logistic"][0]
    for key in ("gamma", "c_teacher", "c_student", "init_norm", "covariance", "label_type", "frac_beats_both",
                "frac_beats_both_at_t", "err_init", "err_teacher", "err_best", "err_final", "st_cos", "n_pairs",
                "curve"):
        assert key in g, key
    assert len(g["curve"]["step"]) == len(g["curve"]["err_mean"]) and g["curve"]["step"][0] == 0
    assert [p["id"] for p in on_disk["predictions"]] == [f"P{i}" for i in range(1, 15)]
    assert on_disk["cnn"] and on_disk["ridge"]
    assert on_disk["config"] == dataclasses.asdict(tiny_config()) and on_disk["wall_time_s"] > 0

    again = run(tiny_config(), tmp_path / "b", progress=False)
    other = run(tiny_config(seed=1), tmp_path / "c", progress=False)
    strip = lambda m: {k: v for k, v in m.items() if k not in ("wall_time_s", "timings_s")}  # noqa: E731
    assert strip(again) == strip(first)
    assert other["two_layer"][0]["w2s_err_cal"] != first["two_layer"][0]["w2s_err_cal"]
    assert other["logistic"][0]["err_best"] != first["logistic"][0]["err_best"]
    assert other["cnn"][-1]["w2s_acc_final"] != first["cnn"][-1]["w2s_acc_final"]
    assert other["ridge"][0]["teacher_err"] != first["ridge"][0]["teacher_err"]


def test_disabled_settings_are_skipped(tmp_path):
    cfg = tiny_config()
    cfg.two_layer.enabled = False
    m = run(cfg, tmp_path, progress=False)
    assert m["two_layer"] == [] and m["logistic"]
    assert {p["id"]: p["held"] for p in m["predictions"]}["P1"] is None
    assert m["plots"] == ["logistic_error_curves.png", "cnn_accuracy.png", "ridge_student_error.png"]
    cfg.cnn.enabled = cfg.ridge.enabled = False
    m = run(cfg, tmp_path, progress=False)
    assert m["cnn"] == [] and m["ridge"] == [] and m["plots"] == ["logistic_error_curves.png"]
    assert {p["id"]: p["held"] for p in m["predictions"]}["P13"] is None


def test_markdown_section_and_plots(setting1, setting2, tmp_path):
    metrics = {**setting1, **setting2}
    metrics["predictions"] = check_predictions(metrics)
    assert make_plots(metrics, tmp_path) == ["retention_vs_rho.png", "logistic_error_curves.png"]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("retention_vs_rho.png",
                                                                      "logistic_error_curves.png"))
    text = markdown_section(metrics, rel_dir="theory")
    assert text.startswith("## Theory sanity check")
    for pid in range(1, 13):
        assert f"- P{pid} " in text
    assert "](theory/retention_vs_rho.png)" in text and "](theory/logistic_error_curves.png)" in text
    assert "| 0.8 |" in text and "arXiv 2605.12908" in text and "arXiv 2605.05742" in text
