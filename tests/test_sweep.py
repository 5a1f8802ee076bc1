"""Several training seeds pooled in one run, weak x strong sweeps sharing stages, early stopping."""

import json
import os

import numpy as np
import pytest
import yaml

from pipeline.cli import main


def _recipe(tmp_path, body: str, name: str = "r"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


def _common(tmp_path, tiny_data, name):
    return f"""
name: {name}
output_dir: {tmp_path / 'runs'}
data: {{path: {tiny_data}, text_field: review, label_field: sentiment, n_train_weak: 60, n_transfer: 60,
        n_test: 60, max_length: 16}}
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
"""


def test_seeds_run_each_stage_per_seed_and_pool(tmp_path, tiny_models, tiny_data, capsys):
    body = _common(tmp_path, tiny_data, "seeds") + f"""
seeds: [0, 1, 2]
weak: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [0.1, 10.0]}}}}
strong: {{model: {tiny_models['decoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [0.01, 1.0], epochs: 10}}}}
methods:
  - name: naive
  - name: aux_conf
  - {{name: naive, id: naive_hard, hard: true, seeds: [1]}}
"""
    recipe = _recipe(tmp_path, body)
    assert main(["run", str(recipe), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "seeds"
    res = json.loads((run_dir / "results.json").read_text())
    assert res["seeds"] == [0, 1, 2]
    for seed in (0, 1, 2):
        for stage in ("weak", "ceiling", "transfer/naive", "transfer/aux_conf"):
            assert (run_dir / f"seed{seed}" / stage / "metrics.json").exists(), (seed, stage)
    assert not (run_dir / "seed0/transfer/naive_hard").exists() and (run_dir / "seed1/transfer/naive_hard").exists()
    # pooled accuracy is the mean of the per-seed accuracies read back from each seed's predictions
    for key in ("naive", "aux_conf"):
        per = []
        for seed in (0, 1, 2):
            rows = [json.loads(line) for line in (run_dir / f"seed{seed}/transfer/{key}/predictions.jsonl").read_text()
                    .splitlines()]
            per.append(np.mean([(r["prob"] > 0.5) == r["label"] for r in rows]))
        entry = res["methods"][key]
        assert entry["accuracy"]["per_seed"] == pytest.approx(per)
        assert entry["accuracy"]["value"] == pytest.approx(np.mean(per))
        assert entry["accuracy"]["ci95"][0] <= entry["accuracy"]["value"] <= entry["accuracy"]["ci95"][1]
    assert res["methods"]["aux_conf"]["loss"] == "logconf" and res["methods"]["naive"]["loss"] == "xent"
    assert res["methods"]["naive_hard"]["seeds"] == [1]
    report = (run_dir / "report.md").read_text()
    assert "### Per seed" in report and "two-level bootstrap" in report
    # the one-seed method is not in the table of three-seed means, but in its own beside seed 1's weak / ceiling
    main_table = report.split("### Methods run on a subset")[0]
    assert "naive_hard" not in main_table.split("**How to read PGR")[0]
    weak1 = res["weak"]["accuracy"]["per_seed"][1] * 100
    assert f"| weak, seed 1 | {weak1:.1f} |" in report and "| **transfer: naive_hard**, seed 1 |" in report
    assert res["methods"]["naive_hard"]["vs_baseline"]["seeds"] == [1]
    out = capsys.readouterr().out
    assert out.count("[data]") == 1  # one shared split: the data stage runs once for all seeds


def test_vary_split_draws_one_split_per_seed(tmp_path, tiny_models, tiny_data):
    body = _common(tmp_path, tiny_data, "vary").replace("max_length: 16}", "max_length: 16, vary_split: true}") + f"""
seeds: [0, 1]
weak: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}
strong: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}
"""
    assert main(["run", str(_recipe(tmp_path, body)), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "vary"
    ids = [json.loads((run_dir / f"data/seed{s}/metrics.json").read_text())["splits"]["test"]["sha256_16"]
           for s in (0, 1)]
    assert ids[0] != ids[1]
    assert json.loads((run_dir / "results.json").read_text())["env"]["vary_split"] is True


@pytest.fixture
def bigger_encoder(tmp_path_factory, tiny_models):
    """A second tiny BERT, wider than the first: a larger 'strong' model for the sweep."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("big") / "wide-bert"
    BertModel(BertConfig(vocab_size=60, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=96, max_position_embeddings=64)).save_pretrained(d)
    for f in os.listdir(tiny_models["encoder"]):
        if "token" in f or f.startswith("special") or f == "vocab.txt":
            shutil.copy(os.path.join(tiny_models["encoder"], f), d / f)
    return str(d)


def test_sweep_runs_weak_le_strong_pairs_and_shares_weak_labels_and_ceilings(tmp_path, tiny_models, tiny_data,
                                                                             bigger_encoder):
    from transformers import AutoModel

    from pipeline.config.loading import load_recipe
    from pipeline.runner import Runner
    from pipeline.sweep import run_sweep

    small, dec = tiny_models["encoder"], tiny_models["decoder"]
    size = {p: sum(x.numel() for x in AutoModel.from_pretrained(p).parameters()) for p in (small, bigger_encoder, dec)}
    body = _common(tmp_path, tiny_data, "sweep") + f"""
seeds: [0, 1]
weak: {{mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}
strong: {{mode: head, head: {{cv_folds: 3, l2_grid: [0.1, 1.0], epochs: 5}}}}
sweep:
  weak: [{small}, {bigger_encoder}, {dec}]
  strong: [{bigger_encoder}, {dec}]
methods: [naive, aux_conf]
"""
    recipe = load_recipe(_recipe(tmp_path, body))
    runner = Runner(recipe, progress=False, log=lambda *a, **k: None)
    run_sweep(runner)
    root = tmp_path / "runs" / "sweep"
    res = json.loads((root / "results.json").read_text())
    want = {(w, s) for w in (small, bigger_encoder, dec) for s in (bigger_encoder, dec) if size[w] <= size[s]}
    assert {(r["weak"], r["strong"]) for r in res["pairs"]} == want and len(want) >= 3
    executed = runner.executed
    assert len(executed) == len(set(executed))  # no stage folder computed twice
    weak_runs = [e for e in executed if e.endswith(os.sep + "weak")]
    ceiling_runs = [e for e in executed if e.endswith(os.sep + "ceiling")]
    n_weak = len({w for w, _ in want})
    n_strong = len({s for _, s in want})
    assert len(weak_runs) == 2 * n_weak and len(ceiling_runs) == 2 * n_strong  # once per model and seed
    assert len([e for e in executed if os.sep + "transfer" + os.sep in e]) == 2 * 2 * len(want)
    for r in res["pairs"]:
        assert set(r["methods"]) == {"naive", "aux_conf"}
        assert (root / "pairs" / r["pair"] / "report.md").exists()
    assert (root / "sweep_size.png").stat().st_size > 10_000
    assert "| weak | strong |" in (root / "report.md").read_text()
    # weak models under one strong model compared paired, each against the sweep's first weak entry
    acc = {(r["models"], m): v["accuracy"]["value"] for r in res["pairs"] for m, v in r["methods"].items()}
    settings = res["weak_settings"]
    assert settings and {s["method"] for s in settings} == {"naive", "aux_conf"}
    for s in settings:
        ref, other = (f"{s[k]}_to_{s['strong']}" for k in ("reference", "other"))
        assert s["student"]["value"] == pytest.approx(acc[other, s["method"]] - acc[ref, s["method"]])
        assert s["student"]["ci95"][0] <= s["student"]["value"] <= s["student"]["ci95"][1]
    assert "### Weak settings compared, paired" in (root / "report.md").read_text()
    # a second invocation computes nothing
    again = Runner(recipe, progress=False, log=lambda *a, **k: None)
    run_sweep(again)
    assert again.executed == []


def test_early_stopping_keeps_the_best_head_and_gold_selection_is_flagged(tmp_path, tiny_models, tiny_data):
    body = _common(tmp_path, tiny_data, "es") + f"""
weak: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}
strong:
  model: {tiny_models['encoder']}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.1], epochs: 8}}
  train: {{early_stopping: {{enabled: true, val_fraction: 0.2, patience: 0, select_on: gold, metric: accuracy}}}}
methods: [naive]
"""
    assert main(["run", str(_recipe(tmp_path, body)), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "es"
    res = json.loads((run_dir / "results.json").read_text())
    es = res["methods"]["naive"]["early_stopping"]
    assert es["oracle"] and es["validation_examples"] == 12 and es["select_on"] == "gold"
    best = max(e["accuracy"] for e in es["evaluations"])
    assert es["best_accuracy"] == pytest.approx(best, abs=1e-5) and len(es["evaluations"]) == 8 * 2
    assert res["oracle_selection"] is True
    report = (run_dir / "report.md").read_text()
    assert "Oracle model selection" in report and "[oracle selection]" in report
    m = json.loads((run_dir / "seed0/transfer/naive/metrics.json").read_text())
    assert m["head_solver"] == "adamw"


def test_early_stopping_restores_the_best_finetuned_weights(tiny_models):
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.config.schema import TrainConfig
    from pipeline.predict import predict_proba
    from pipeline.train.loop import finetune
    from tests.conftest import make_rows

    rows = make_rows(60, seed=3)
    texts = [r["review"] for r in rows]
    y = np.array([r["sentiment"] == "pos" for r in rows], dtype=int)
    tok = models.load_tokenizer(tiny_models["encoder"])
    model = models.load_classifier(tiny_models["encoder"], tok, "full")
    cfg = TrainConfig(epochs=4, lr=2e-3, batch_size=8)
    cfg.early_stopping.enabled, cfg.early_stopping.patience, cfg.early_stopping.metric = True, 0, "loss"
    val = (texts[40:], np.eye(2)[y[40:]])
    acc = Accelerator()
    out = finetune(model, tok, texts[:40], np.eye(2)[y[:40]], cfg, 16, acc, seed=0, val=val)
    es = out["early_stopping"]
    assert len(es["evaluations"]) >= 4 and es["best_step"] is not None
    p = predict_proba(out["model"], tok, val[0], 16, 8, acc)
    now = float(-(val[1] * np.log(np.clip(p, 1e-7, 1))).sum(1).mean())
    assert now == pytest.approx(es["best_loss"], abs=1e-4)  # the restored weights are the best ones


def test_sweep_with_no_pair_and_bad_seeds_are_user_errors(tmp_path, tiny_models, tiny_data, bigger_encoder, capsys):
    body = _common(tmp_path, tiny_data, "nopair") + f"""
weak: {{mode: head}}
strong: {{mode: head}}
sweep: {{weak: [{bigger_encoder}], strong: [{tiny_models['encoder']}]}}
"""
    assert main(["run", str(_recipe(tmp_path, body, "a")), "--no-progress"]) == 2
    assert "no pair" in capsys.readouterr().err
    body = _common(tmp_path, tiny_data, "badseeds") + """
seeds: [0, 0]
methods: [{name: naive, seeds: [5]}, {name: aux_conf, loss: {name: xent}}]
strong: {model: mpnet, mode: head, head: {solver: newton}}
"""
    assert main(["validate", str(_recipe(tmp_path, body, "b"))]) == 2
    err = capsys.readouterr().err
    assert "seeds: each seed once" in err and "methods[0].seeds" in err
    body = _common(tmp_path, tiny_data, "newton") + """
methods: [aux_conf]
strong: {model: mpnet, mode: head, head: {solver: newton}}
"""
    assert main(["validate", str(_recipe(tmp_path, body, "c"))]) == 2
    assert "needs an iterative solver" in capsys.readouterr().err


def test_yaml_sweep_entries_inherit_the_role_block(tmp_path):
    from pipeline.config.loading import load_recipe

    path = _recipe(tmp_path, """
weak: {mode: full, train: {epochs: 3}}
strong: {mode: head}
sweep:
  weak: [minilm, {model: mpnet, mode: head}]
  strong: [gemma3-270m]
""")
    r = load_recipe(path)
    assert [(m.model, m.mode, m.train.epochs) for m in r.sweep.weak] == [("minilm", "full", 3), ("mpnet", "head", 3)]
    assert r.sweep.strong[0].mode == "head" and r.sweep.enabled
    assert yaml.safe_load(path.read_text())["sweep"]["weak"][0] == "minilm"


def test_a_sweep_with_a_shifted_test_set_reports_it_per_pair(tmp_path, tiny_models, tiny_data):
    from pipeline.config.loading import load_recipe
    from pipeline.runner import Runner
    from pipeline.sweep import run_sweep

    enc, dec = tiny_models["encoder"], tiny_models["decoder"]
    shifted = f"max_length: 16, test_ood: {{path: {tiny_data}, n: 30}}}}"
    body = _common(tmp_path, tiny_data, "shift").replace("max_length: 16}", shifted) + f"""
weak: {{mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
strong: {{mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
sweep: {{weak: [{enc}], strong: [{enc}, {dec}], pairs: all}}
methods: [naive]
"""
    run_sweep(Runner(load_recipe(_recipe(tmp_path, body)), progress=False, log=lambda *a, **k: None))
    root = tmp_path / "runs" / "shift"
    res = json.loads((root / "results.json").read_text())
    assert len(res["pairs"]) == 2 and all("naive" in r["test_ood"]["methods"] for r in res["pairs"])
    report = (root / "report.md").read_text()
    assert "Shifted test set" in report and report.count(f"| {enc} (") == 6  # 3 cells per table, 2 tables


def test_a_suite_runs_every_pair_on_each_dataset_and_summarises_across_them(tmp_path, tiny_models, capsys):
    recipe = tmp_path / "suite.yaml"
    recipe.write_text(f"""
name: suite
output_dir: {tmp_path / 'runs'}
data: {{name: multiemo, n_train_weak: 60, n_transfer: 60, n_test: 80, max_length: 16}}
weak: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
strong: {{model: {tiny_models['decoder']}, mode: head, head: {{cv_folds: 2, l2_grid: [1.0]}}}}
sweep: {{datasets: [multiemo, fact_checker]}}
methods: [naive, aux_conf]
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    root = tmp_path / "runs" / "suite"
    res = json.loads((root / "results.json").read_text())
    assert [r["dataset"] for r in res["pairs"]] == ["multiemo", "fact_checker"]
    for ds in ("multiemo", "fact_checker"):
        pair = json.loads((root / "pairs" / f"{ds}_tiny-bert_to_tiny-llama" / "results.json").read_text())
        assert pair["config"]["data"]["name"] == ds and pair["data"]["summary"].startswith(f"{ds}:")
        assert (root / "datasets" / ds / "data").exists()
    summary = res["suite"]["tiny-bert_to_tiny-llama"]
    for m in ("naive", "aux_conf"):
        per = summary[m]["pgr_per_dataset"]
        assert set(per) == {"multiemo", "fact_checker"}
        defined = [v for v in per.values() if v is not None]
        if defined:
            assert summary[m]["median_pgr"]["value"] == pytest.approx(float(np.median(defined)))
            lo, hi = summary[m]["median_pgr"]["ci95"]
            assert min(defined) - 1e-9 <= lo <= hi <= max(defined) + 1e-9
    assert set(summary["aux_conf"]["delta_vs_baseline_per_dataset"]) == {"multiemo", "fact_checker"}
    report = (root / "report.md").read_text()
    assert "### Suite: tiny-bert_to_tiny-llama" in report and (root / "suite_pgr.png").exists()
    assert main(["validate", str(recipe), "sweep.datasets=[multiemo, multiemo_pairs, multiemoo]"]) == 2
    err = capsys.readouterr().err
    assert "'multiemo_pairs' is a preference dataset" in err and "unknown dataset 'multiemoo'" in err


def test_sweep_entries_of_one_model_are_named_by_what_tells_them_apart():
    from pipeline.config.schema import TrainConfig, WeakConfig
    from pipeline.sweep import _names

    budget = [WeakConfig(model="minilm", mode="full", train=TrainConfig(epochs=e)) for e in (2, 6)]
    assert _names([*budget, WeakConfig(model="minilm", mode="head"), WeakConfig(model="mpnet")]) == [
        "minilm-full-epochs2", "minilm-full-epochs6", "minilm-head", "mpnet"]
    assert _names([budget[0], budget[0]]) == ["minilm-full-0", "minilm-full-1"]
