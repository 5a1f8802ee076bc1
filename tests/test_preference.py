"""Reward modelling: the Bradley-Terry loss by hand, pair features, and a preference run end to end."""

import json
import math
import os
import random

import numpy as np
import pytest
import torch
from conftest import NEGATIVE, NEUTRAL, POSITIVE

from pipeline.cli import main
from pipeline.losses import make_loss
from pipeline.predict import pair_logits


def test_bradley_terry_is_xent_on_pair_logits_by_hand():
    r = torch.tensor([[1.5], [-0.5], [0.25], [0.0]])  # rewards of A rows (2), then B rows (2)
    logits = pair_logits(r)
    assert logits.tolist() == [[0.25, 1.5], [0.0, -0.5]]
    p = torch.tensor([[0.1, 0.9], [0.7, 0.3]])  # soft preferences: P(A preferred) = 0.9, 0.3
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    by_hand = np.mean([-(0.9 * math.log(sig(1.5 - 0.25)) + 0.1 * math.log(sig(0.25 - 1.5))),
                       -(0.3 * math.log(sig(-0.5 - 0.0)) + 0.7 * math.log(sig(0.0 + 0.5)))])
    assert make_loss(None)(logits, p, 0.0).item() == pytest.approx(by_hand, rel=1e-6)
    assert torch.softmax(logits, -1)[0, 1].item() == pytest.approx(sig(1.5 - 0.25))


def _pairs(n, seed=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(NEUTRAL) for _ in range(3))
        good = " ".join([rng.choice(POSITIVE), rng.choice(NEUTRAL), rng.choice(POSITIVE)])
        bad = " ".join([rng.choice(NEGATIVE), rng.choice(NEUTRAL), rng.choice(NEGATIVE)])
        if rng.random() < 0.1:  # label noise
            good, bad = bad, good
        rows.append({"prompt": prompt, "chosen": good, "rejected": bad, "domain": "x" if i % 4 else "y"})
    return rows


def test_preference_run_end_to_end(tmp_path, tiny_models, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(320)))
    recipe = tmp_path / "pref.yaml"
    recipe.write_text(f"""
name: pref
task: preference
output_dir: {tmp_path / 'runs'}
data:
  path: {data}
  n_train_weak: 60
  n_transfer: 80
  n_test: 60
  max_length: 16
  test_ood: {{where: domain=y, n: 40}}
weak:
  model: {tiny_models['encoder']}
  mode: full
  train: {{epochs: 4, lr: 2.0e-3, batch_size: 8}}
strong:
  model: {tiny_models['encoder']}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}
methods:
  - name: naive
  - name: aux_conf
  - name: graph_smooth
  - {{name: selective, folds: 3, weak_folds: 2}}
evaluate: {{bootstrap: 200}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "pref"
    res = json.loads((run_dir / "results.json").read_text())
    assert set(res["methods"]) == {"naive", "aux_conf", "graph_smooth", "selective"}
    assert res["ceiling"]["accuracy"]["value"] > 0.75  # a linear reward on pair feature differences learns it
    assert res["weak"]["accuracy"]["value"] > 0.6
    for m in res["methods"].values():
        assert set(m["pgr"]["accuracy"]) >= {"value", "ci95"}
    ood = res["test_ood"]
    assert ood["n_test"] == 40 and set(ood["models"]) == {"weak", "ceiling", *res["methods"]}
    assert "naive" in ood["pgr"]
    split = __import__("datasets").load_from_disk(str(run_dir / "data" / "test"))
    assert split.column_names == ["id", "text", "text_b", "label"]
    labels = __import__("datasets").load_from_disk(str(run_dir / "seed0" / "weak" / "labels"))
    soft = np.array(labels["soft_label"])
    assert ((soft > 0) & (soft < 1)).all()  # sigmoid(r_A - r_B): soft preferences
    report = (run_dir / "report.md").read_text()
    assert "Shifted test set" in report and "response A is the preferred one" in report
    assert os.path.exists(run_dir / "seed0" / "ceiling" / "predictions_test_ood.jsonl")
    capsys.readouterr()


def test_refine_on_a_preference_task_is_a_config_error(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(20)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: preference\ndata: {{path: {data}}}\nmethods: [{{name: naive}}, {{name: refine}}]\n")
    code = main(["validate", str(recipe)])
    err = capsys.readouterr().err
    assert code == 2 and "refine does not support task 'preference'" in err
    recipe.write_text("task: preference\ndata: {name: multiemo}\n")
    assert main(["validate", str(recipe)]) == 2
    assert "'multiemo' is a classification dataset" in capsys.readouterr().err
