"""The plan and its cache keys, computed without running anything: keys follow declared config and
the input units' keys."""

from types import SimpleNamespace

import pytest

from pipeline.config.loading import load_recipe
from pipeline.errors import UserError
from pipeline.runner import Runner

ACC = SimpleNamespace(is_main_process=True, mixed_precision="no")


def _keys(tiny_data, *overrides) -> dict[str, str]:
    r = load_recipe(None, [f"data.path={tiny_data}", "data.text_field=review", "data.label_field=sentiment",
                           "data.n_train_weak=40", "data.n_transfer=40", "data.n_test=40", "seeds=[0, 1]",
                           "methods=[naive, {name: naive, id: naive_hard, hard: true, seeds: [0]}]", *overrides])
    # the report is never cached: its key means nothing
    return {row[2]: row[4] for row in Runner(r, accelerator=ACC, log=print).plan() if row[0].cached}


def test_plan_lists_every_unit_in_order(tiny_data):
    labels = list(_keys(tiny_data))
    assert labels == ["data", "seed0/weak", "seed1/weak", "seed0/ceiling", "seed1/ceiling",
                      "seed0/transfer/naive", "seed0/transfer/naive_hard", "seed1/transfer/naive",
                      "evaluate", "theory"]
    assert "theory" not in _keys(tiny_data, "theory.enabled=false")


def test_keys_follow_config_and_inputs(tiny_data):
    base = _keys(tiny_data)
    weak = _keys(tiny_data, "weak.train.lr=1e-4")
    changed = {k for k in base if base[k] != weak[k]}
    assert changed == {"seed0/weak", "seed1/weak", "seed0/transfer/naive", "seed0/transfer/naive_hard",
                       "seed1/transfer/naive", "evaluate"}
    strong = _keys(tiny_data, "strong.head.cv_folds=3")
    assert {k for k in base if base[k] != strong[k]} == {
        "seed0/ceiling", "seed1/ceiling", "seed0/transfer/naive", "seed0/transfer/naive_hard",
        "seed1/transfer/naive", "evaluate"}
    data = _keys(tiny_data, "data.n_test=42")
    assert {k for k in base if base[k] == data[k]} == {"theory"}
    assert len({base["seed0/weak"], base["seed1/weak"]}) == 2  # the seed is part of the unit


def test_a_key_the_mode_ignores_is_an_error(tiny_data):
    with pytest.raises(UserError) as e:
        load_recipe(None, [f"data.path={tiny_data}", "strong.mode=head", "strong.train.lr=1e-3",
                           "strong.train.epochs=3", "weak.mode=full", "weak.lora.r=4"])
    msg = str(e.value)
    assert "strong.train.lr: does nothing in head mode" in msg and "strong.train.epochs: does nothing" in msg
    assert "weak.lora.r: does nothing in full mode" in msg and "3 problem(s)" in msg
    # what head mode does read is fine, and so are the defaults
    r = load_recipe(None, [f"data.path={tiny_data}", "strong.mode=head", "strong.train.eval_batch_size=8",
                           "strong.head.lr=0.01"])
    assert r.strong.train.eval_batch_size == 8


def _head_recipe(tmp_path, tiny_models, tiny_data):
    """Head mode for both models: a full plan (data, weak, ceiling, 2 transfers, evaluate) in seconds."""
    p = tmp_path / "r.yaml"
    enc = tiny_models["encoder"]
    p.write_text(f"""
name: keys
output_dir: {tmp_path / 'runs'}
data: {{path: {tiny_data}, text_field: review, label_field: sentiment, n_train_weak: 40, n_transfer: 40,
        n_test: 40, max_length: 16}}
weak: {{model: {enc}, mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
strong: {{model: {enc}, mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
methods: [naive, {{name: graph_smooth, knn: 3}}]
evaluate: {{bootstrap: 100}}
theory: {{enabled: false}}
""")
    return p


def _states(recipe_path, **kw) -> dict[str, str]:
    r = load_recipe(recipe_path)
    return {row[2]: row[5] for row in Runner(r, accelerator=ACC, log=print, **kw).plan() if row[0].cached}


def _executed(recipe_path, *flags) -> list[str]:
    from pipeline.cli import main

    before = {p: p.stat().st_mtime_ns for p in (recipe_path.parent / "runs").rglob("metrics.json")} \
        if (recipe_path.parent / "runs").exists() else {}
    assert main(["run", str(recipe_path), "--no-progress", *flags]) == 0
    after = {p: p.stat().st_mtime_ns for p in (recipe_path.parent / "runs").rglob("metrics.json")}
    root = recipe_path.parent / "runs" / "keys"
    return sorted(str(p.parent.relative_to(root)) for p, t in after.items() if before.get(p) != t)


def test_a_forced_stage_reruns_everything_downstream_once(tmp_path, tiny_models, tiny_data):
    recipe = _head_recipe(tmp_path, tiny_models, tiny_data)
    assert set(_states(recipe).values()) == {"new"}
    assert _executed(recipe) == ["data", "evaluate", "seed0/ceiling", "seed0/transfer/graph_smooth",
                                 "seed0/transfer/naive", "seed0/weak"]
    assert set(_states(recipe).values()) == {"reuse"}
    plan = _states(recipe, force_stages=["weak"])
    assert plan["weak"] == "forced" and plan["data"] == plan["ceiling"] == "reuse"
    assert plan["transfer/naive"] == plan["transfer/graph_smooth"] == "after weak" and plan["evaluate"] != "reuse"
    assert _executed(recipe, "--force-stage", "weak") == ["evaluate", "seed0/transfer/graph_smooth",
                                                          "seed0/transfer/naive", "seed0/weak"]
    assert _executed(recipe) == []  # the forced weak stage's new output is what everything now matches


def test_editing_a_method_reruns_only_that_method(tmp_path, tiny_models, tiny_data, monkeypatch):
    from pipeline import fingerprint

    recipe = _head_recipe(tmp_path, tiny_models, tiny_data)
    _executed(recipe)
    real = fingerprint.source
    monkeypatch.setattr(fingerprint, "source", lambda m: real(m) + ("\n# edited" if m.endswith("graph_smooth") else ""))
    plan = _states(recipe)
    assert plan["transfer/graph_smooth"] == "changed" and plan["evaluate"] == "after transfer/graph_smooth"
    assert {k for k, v in plan.items() if v == "reuse"} == {"data", "weak", "ceiling", "transfer/naive"}
    monkeypatch.setattr(fingerprint, "source", lambda m: real(m) + ("\n# edited" if m.endswith("train.head") else ""))
    plan = _states(recipe)  # shared machinery: every unit that fits a head reruns, data does not
    assert plan["data"] == "reuse" and plan["weak"] == plan["ceiling"] == "changed"
    assert plan["transfer/naive"] == "after weak"


def test_a_weak_models_own_source_enters_the_data_key_once_per_split(tiny_data):
    teacher = "{model: minilm, mode: head, data: {where: sentiment=pos}}"
    one = _keys(tiny_data, f"methods=[naive, {{name: uniform, teachers: [{teacher}]}}]")
    two = _keys(tiny_data, f"methods=[naive, {{name: uniform, teachers: [{teacher}]}}, "
                           f"{{name: ensemble, teachers: [{teacher}]}}]")
    assert one["data"] == two["data"] and one["seed0/ceiling"] == two["seed0/ceiling"]  # the same split
    other = _keys(tiny_data, f"methods=[naive, {{name: uniform, teachers: [{teacher.replace('pos', 'neg')}]}}]")
    assert other["data"] != one["data"]
    assert _keys(tiny_data, "weak.data.where=sentiment=neg")["data"] != _keys(tiny_data)["data"]
