"""ensemble / uniform (RAVEN): simplex weights, the easy-sample warm-up, and weights that find the
teacher that agrees with what the strong features can express."""

import numpy as np
import pytest

from pipeline.methods import METHODS
from pipeline.methods.ensemble import Config, easy_rows, fit_weights, initial_weights, project


def _teachers(n=600, seed=0):
    """Gold is a linear function of the features; teacher 0 is 90% right, teacher 1 70%, teacher 2 random."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)

    def noisy(acc):
        right = rng.random(n) < acc
        hard = np.where(right, y, 1 - y)
        conf = rng.uniform(0.6, 0.9, n)
        p1 = np.where(hard == 1, conf, 1 - conf)
        return np.c_[1 - p1, p1]

    return x, y, np.stack([noisy(0.9), noisy(0.7), noisy(0.5)])


def test_projection_keeps_weights_on_the_simplex():
    import torch

    w = torch.tensor([0.7, -0.2, 0.6])
    project(w)
    assert w.tolist() == pytest.approx([0.7 / 1.3, 0.0, 0.6 / 1.3]) and float(w.sum()) == pytest.approx(1.0)
    w = torch.tensor([-1.0, -2.0])
    project(w)
    assert w.tolist() == [0.5, 0.5]


def test_learned_weights_stay_on_the_simplex_and_favour_the_accurate_teacher():
    x, y, probs = _teachers()
    fit = fit_weights(x, probs, Config(epochs=30, weights_lr=0.05, warmup_epochs=3), seed=0)
    for w in fit["trajectory"]:
        assert min(w) >= 0 and sum(w) == pytest.approx(1.0, abs=1e-5)
    w = fit["weights"]
    # the loss is linear in w, so weight flows to the teacher the probe fits best (a vertex, eventually)
    assert w.argmax() == 0 and w[0] > 0.5 and w[1] >= w[2]
    assert fit["trajectory"][5][2] < 1 / 3  # the random teacher loses weight early
    assert fit["trajectory"][0] == pytest.approx([1 / 3] * 3)


def test_warm_up_trains_on_the_examples_where_every_teacher_agrees_first():
    x, y, probs = _teachers(n=300)
    easy = easy_rows(probs)
    hard = probs.argmax(-1)
    assert ((hard[:, easy] == hard[0, easy]).all()) and 0 < len(easy) < 300
    rest = np.setdiff1d(np.arange(300), easy)
    assert not (hard[:, rest] == hard[0, rest]).all(0).any()
    fit = fit_weights(x, probs, Config(epochs=5, warmup_epochs=2), seed=0)
    assert fit["rows_per_epoch"] == [len(easy)] * 2 + [300] * 3


def test_uniform_keeps_equal_weights_and_inverse_entropy_prefers_the_confident_teacher():
    x, y, probs = _teachers(n=200)
    fit = fit_weights(x, probs, METHODS["uniform"].Config(), seed=0)
    assert fit["weights"].tolist() == pytest.approx([1 / 3] * 3)
    sharp = probs.copy()
    sharp[1] = np.eye(2)[probs[1].argmax(1)] * 0.98 + 0.01  # teacher 1 nearly one-hot: low entropy
    w0 = initial_weights(sharp, "inverse_entropy")
    assert w0.sum() == pytest.approx(1.0) and w0.argmax() == 1


def test_ensemble_labels_are_the_weighted_teachers_on_a_fake_context():
    from pipeline.methods.base import MethodContext, Split

    x, y, probs = _teachers(n=200)
    splits = {s: Split([f"{s}{i}" for i in range(200)], y, list(range(200)))
              for s in ("train_weak", "transfer", "test")}
    seen = []

    def fit_teacher(model_cfg, desc):
        seen.append((model_cfg.model, desc))
        return probs[1 + len(seen) - 1]

    from pipeline.config.schema import ModelConfig

    ctx = MethodContext(seed=0, splits=splits, weak_labels=probs[0].astype(np.float32), weak_train_probs=None,
                        weak_test_probs=None, strong=None, features=lambda names: {s: x for s in names},
                        fit_weak=None, prompter=None, fit_teacher=fit_teacher)
    cfg = METHODS["ensemble"].Config(teachers=[ModelConfig(model="t1"), ModelConfig(model="t2")], epochs=10)
    out = METHODS["ensemble"].build_labels(cfg, ctx)
    d = out.diagnostics
    assert [m for m, _ in seen] == ["t1", "t2"] and d["teachers"] == ["weak", "t1 (full)", "t2 (full)"]
    assert np.allclose(out.targets, np.einsum("k,knc->nc", np.array(d["weights"]), probs), atol=1e-5)
    assert d["teacher_accuracy_B"][0] > d["teacher_accuracy_B"][2]
    assert METHODS["ensemble"].preflight(METHODS["ensemble"].Config(teachers=[]), None)  # one teacher: no ensemble


def test_ensemble_and_uniform_run_end_to_end(tmp_path, tiny_models, tiny_data, capsys):
    import json

    from pipeline.cli import main

    enc, dec = tiny_models["encoder"], tiny_models["decoder"]
    recipe = tmp_path / "ens.yaml"
    recipe.write_text(f"""
name: ens
output_dir: {tmp_path / 'runs'}
data: {{path: {tiny_data}, text_field: review, label_field: sentiment, n_train_weak: 60, n_transfer: 60,
        n_test: 60, max_length: 16}}
weak: {{model: {enc}, mode: full, train: {{epochs: 3, lr: 2.0e-3, batch_size: 8}}}}
strong: {{model: {dec}, mode: head, head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}}}
methods:
  - naive
  - name: ensemble
    teachers: [{{model: {enc}, mode: head, head: {{cv_folds: 3, l2_grid: [10.0]}}}},
               {{model: {dec}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}]
    epochs: 5
  - name: uniform
    teachers: [{{model: {enc}, mode: head, head: {{cv_folds: 3, l2_grid: [10.0]}}}},
               {{model: {dec}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}]
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "ens"
    res = json.loads((run / "results.json").read_text())
    ens, uni = (res["methods"][k]["diagnostics"] for k in ("ensemble", "uniform"))
    assert len(ens["weights"]) == 3 and sum(ens["weights"]) == pytest.approx(1.0) and min(ens["weights"]) >= 0
    assert uni["weights"] == pytest.approx([1 / 3] * 3) and not uni["learned"]
    assert len(ens["teacher_accuracy_B"]) == 3 and ens["teachers"][0] == "weak"
    report = (run / "report.md").read_text()
    assert "### Teachers of `ensemble`" in report and "| uniform |" in report.split("### Against")[1]
    capsys.readouterr()


def test_teachers_under_a_shift_train_on_their_own_sources_and_both_test_sets_are_scored(tmp_path, tiny_models,
                                                                                          capsys):
    import json

    import datasets
    from conftest import make_rows

    from pipeline.cli import main

    rows = [{**r, "domain": "abc"[i % 3]} for i, r in enumerate(make_rows(540))]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    domain = {r["review"]: r["domain"] for r in rows}
    enc, dec = tiny_models["encoder"], tiny_models["decoder"]
    head = "head: {cv_folds: 3, l2_grid: [1.0]}"
    recipe = tmp_path / "shift.yaml"
    recipe.write_text(f"""
name: shift
output_dir: {tmp_path / 'runs'}
data: {{path: {data}, text_field: review, label_field: sentiment, where: domain=a, n_train_weak: 40,
        n_transfer: 50, n_test: 50, max_length: 16, test_ood: {{path: {data}, where: domain=b, n: 40}}}}
weak: {{model: {enc}, mode: head, {head}, data: {{where: domain=b}}}}
strong: {{model: {dec}, mode: head, {head}}}
methods:
  - naive
  - name: ensemble
    teachers: [{{model: {enc}, mode: head, {head}, data: {{where: domain=c, n: 30}}}},
               {{model: {dec}, mode: head, {head}}}]
    epochs: 3
evaluate: {{bootstrap: 100}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "shift"
    split = {p.name: datasets.load_from_disk(str(p)) for p in (run / "data").iterdir() if p.is_dir()}
    own = next(k for k in split if k.startswith("train_weak."))
    assert {domain[t] for t in split["train_weak"]["text"]} == {"b"} and len(split["train_weak"]) == 40
    assert {domain[t] for t in split[own]["text"]} == {"c"} and len(split[own]) == 30
    assert {domain[t] for k in ("transfer", "test") for t in split[k]["text"]} == {"a"}
    assert not set(split["train_weak"]["text"]) & set(split["test_ood"]["text"])  # its test texts held out
    res = json.loads((run / "results.json").read_text())
    ens = res["methods"]["ensemble"]["diagnostics"]
    assert ens["teachers"][1].endswith("trained on domain=c)") and len(ens["weights"]) == 3
    assert set(res["test_ood"]["models"]) == {"weak", "ceiling", "naive", "ensemble"}  # scored on the shifted set
    report = (run / "report.md").read_text()
    assert "train_weak drawn from" in report and "where domain=b" in report and "trained on domain=b" in report
    # a teacher's source that matches nothing is found before anything runs, naming the teacher
    bad = recipe.read_text().replace("where: domain=c, n: 30", "where: domain=z")
    recipe.write_text(bad.replace("name: shift", "name: shift2"))
    capsys.readouterr()
    assert main(["validate", str(recipe)]) == 2
    assert "methods[1].teachers[0].data: data.where: 'domain=z' matches none" in capsys.readouterr().err


def test_cross_entropy_weights_reward_confidence_and_kl_removes_that_bias():
    """A teacher right on 85% of B at confidence 0.65 and one right on 70% at 0.99: RAVEN's cross-entropy is
    linear in w and its minimum over w includes each teacher's own entropy, so the confident, less accurate
    teacher takes all the weight; the KL objective (the same loss minus the combined labels' entropy) gives
    the accurate one a real share."""
    from pipeline.methods.ensemble import Config, fit_weights

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8))
    x[:, 0] += (2 * y - 1) * 1.5

    def teacher(acc, conf):
        label = np.where(rng.random(n) < acc, y, 1 - y)
        p = np.where(label == 1, conf, 1 - conf)
        return np.stack([1 - p, p], 1)

    probs = np.stack([teacher(0.85, 0.65), teacher(0.70, 0.99)])
    xent = fit_weights(x, probs, Config(objective="xent", epochs=30), 0)["weights"]
    kl = fit_weights(x, probs, Config(objective="kl", epochs=30), 0)["weights"]
    assert xent[1] > 0.95 and 0.2 < kl[0] < 0.9 and kl.sum() == pytest.approx(1.0) and kl.min() >= 0


def test_ensemble_trains_a_lora_student_on_its_combined_labels(tiny_recipe, tiny_models, capsys):
    """The weights are learned with the method's own probe on frozen features; the student then trains in
    the recipe's strong mode: here LoRA, which saves an adapter, not full weights."""
    import json
    from pathlib import Path

    import yaml

    from pipeline.cli import main

    enc = tiny_models["encoder"]
    teacher = f"{{model: {enc}, mode: head, head: {{cv_folds: 3, l2_grid: [10.0]}}}}"
    assert main(["run", str(tiny_recipe), "--no-progress", "name=ens_lora", f"strong.model={enc}", "strong.mode=lora",
                 "strong.lora.r=4", "strong.lora.alpha=8", "strong.train.epochs=2", "strong.train.lr=5e-2",
                 "strong.train.batch_size=8", f"methods=[{{name: ensemble, teachers: [{teacher}], epochs: 5}}]",
                 "evaluate.bootstrap=100"]) == 0, capsys.readouterr().err
    run = Path(yaml.safe_load(tiny_recipe.read_text())["output_dir"]) / "ens_lora"
    res = json.loads((run / "results.json").read_text())
    weights = res["methods"]["ensemble"]["diagnostics"]["weights"]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0) and min(weights) >= 0
    saved = run / "seed0" / "transfer" / "ensemble" / "model"
    files = {p.name for p in saved.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    metrics = json.loads((run / "seed0" / "transfer" / "ensemble" / "metrics.json").read_text())
    assert metrics["mode"] == "lora" and metrics["train_steps"] == 2 * -(-60 // 8)  # 2 epochs of 8 batches
    capsys.readouterr()
