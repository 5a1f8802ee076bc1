"""Every registry entry through a run on tiny models: its local copy in the hub's schema, formatted,
split natively, a weak and a strong head, naive transfer, evaluation."""

import json

import pytest
from suite_fixtures import write_local_copy

from pipeline.cli import main
from pipeline.suite import SUITE


@pytest.mark.parametrize("name", sorted(SUITE))
def test_registry_entry_runs_on_tiny_models(tmp_path, tiny_models, name, capsys):
    folder = write_local_copy(name, tmp_path / "copy", "parquet", n=48)
    recipe = tmp_path / "r.yaml"
    head = f"{{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}"
    models = f"weak: {head}\nstrong: {head}"
    if SUITE[name].task == "generation":  # a causal LM fine-tuned on the answers, answering greedily
        lm = f"{{model: {tiny_models['decoder']}, mode: full, train: {{epochs: 1, batch_size: 4}}}}"
        models = f"weak: {lm}\nstrong: {lm}\ngeneration: {{max_new_tokens: 4}}"
    recipe.write_text(f"""
name: {name}
task: {SUITE[name].task}
output_dir: {tmp_path / 'runs'}
data: {{name: {name}, path: {folder}, n_train_weak: 12, n_transfer: 12, n_test: 12, max_length: 24}}
{models}
methods: [{{name: naive}}]
evaluate: {{bootstrap: 100}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "runs" / name / "results.json").read_text())
    assert res["data"]["source"]["native_splits"] and res["n_test"] >= 2
    assert 0 <= res["methods"]["naive"]["accuracy"]["value"] <= 1
    capsys.readouterr()
