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
    return {label: key for stage, _, label, _, key in Runner(r, accelerator=ACC, log=print).plan() if stage.cached}


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
