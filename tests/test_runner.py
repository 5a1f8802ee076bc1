"""The whole pipeline end to end on tiny models: artefacts, cache reuse, resume, and bad input."""

import json
import os

import numpy as np
import pytest
import yaml

from pipeline.cli import main


def _run(recipe, *extra):
    return main(["run", str(recipe), "--no-progress", *extra])


def _results(recipe):
    cfg = yaml.safe_load(recipe.read_text())
    run_dir = os.path.join(cfg["output_dir"], cfg["name"])
    return run_dir, json.load(open(os.path.join(run_dir, "results.json")))


def test_end_to_end_then_cached_then_resumed(tiny_recipe, capsys):
    assert _run(tiny_recipe) == 0
    run_dir, res = _results(tiny_recipe)
    for key in ("weak", "ceiling"):
        assert 0 <= res[key]["accuracy"]["value"] <= 1 and 0 <= res[key]["auroc"]["value"] <= 1
        lo, hi = res[key]["accuracy"]["ci95"]
        assert lo <= res[key]["accuracy"]["value"] <= hi
    assert set(res["methods"]) == {"naive", "naive_hard", "graph_smooth", "selective", "refine"}
    rd = res["methods"]["refine"]["diagnostics"]
    assert [c["shots"] for c in rd["refinement_curve"]] == [0, 2] and rd["refiner_is_student"]
    assert rd["prompt_only_test"]["n"] == 20 and rd["scoring_examples_per_s"] > 0
    assert os.path.exists(os.path.join(run_dir, "refine_refine.png"))
    d = res["methods"]["selective"]["diagnostics"]
    for key in ("routed_share", "self_label_accuracy_all_B", "weak_label_accuracy_after_smoothing",
                "pik_auroc_heldout_A", "tau_curve_B"):
        assert key in d, key
    assert 0 <= d["routed_share"] <= 1 and "gold" in d["gold_use"]
    assert d["self_labels"].startswith("prompt (2-shot")  # the tiny strong model is causal: auto -> prompt
    for m in res["methods"].values():
        for kind in ("accuracy", "auroc"):
            p = m["pgr"][kind]
            assert set(p) >= {"value", "ci95"}
            assert (p["value"] is None) == (p["ci95"] is None)
    assert res["config"]["data"]["n_test"] == 60 and res["env"]["versions"]["torch"]
    assert res["ceiling"]["accuracy"]["value"] > 0.7  # the tiny task is learnable by the head
    for f in ("report.md", "accuracy.png", "config.yaml", "env.json", "seed0/weak/labels/dataset_info.json",
              "seed0/weak/model/model.safetensors", "seed0/transfer/naive/predictions.jsonl"):
        assert os.path.exists(os.path.join(run_dir, f)), f
    report = open(os.path.join(run_dir, "report.md")).read()
    assert "How to read PGR" in report and "naive_hard" in report
    # every method against naive, paired: in results.json and as a report section
    assert res["baseline"] == "naive" and "vs_baseline" not in res["methods"]["naive"]
    hard = res["methods"]["naive_hard"]["vs_baseline"]
    assert hard["accuracy"]["value"] == pytest.approx(res["methods"]["naive_hard"]["accuracy"]["value"]
                                                     - res["methods"]["naive"]["accuracy"]["value"])
    assert hard["verdict"] in ("better", "worse", "unclear")
    assert "### Against `naive`, paired (test)" in report and "- Better than `naive`" in report
    # the refinement curve is scored over 5 demonstration blocks of 4 (curve_n 20), their spread kept; at the
    # relabelling's own k (shots 2) it reads the relabelling's scores
    for c in res["methods"]["refine"]["diagnostics"]["refinement_curve"]:
        if c["shots"] == 2:
            assert c["from_relabelling"] and "block_accuracy_per_block" not in c
            continue
        assert c["blocks"] == 5 and len(c["block_accuracy_per_block"]) == 5
        assert np.mean(c["block_accuracy_per_block"]) == pytest.approx(c["accuracy_per_block"])
    assert "lowest–highest accuracy over the curve's 5" in report and "the relabelling's own scores" in report
    assert "Cost: relabelling B" in report
    preds = open(os.path.join(run_dir, "seed0/ceiling/predictions.jsonl")).read().splitlines()
    assert len(preds) == 60
    capsys.readouterr()

    marker = os.path.join(run_dir, "seed0/weak/metrics.json")
    mtime = os.path.getmtime(marker)
    assert _run(tiny_recipe) == 0
    out = capsys.readouterr().out
    for stage in ("data", "weak", "ceiling", "transfer/naive", "transfer/naive_hard", "transfer/selective",
                  "evaluate"):
        assert f"[{stage}] cached" in out
    assert os.path.getmtime(marker) == mtime

    # A crash in one transfer stage: its metrics.json is missing, so only it (and evaluate) rerun.
    os.remove(os.path.join(run_dir, "seed0/transfer/naive/metrics.json"))
    assert _run(tiny_recipe) == 0
    out = capsys.readouterr().out
    assert "[weak] cached" in out and "[transfer/naive_hard] cached" in out
    assert "[transfer/naive] naive:" in out

    # Editing the strong model's config reruns the ceiling and transfers, not the weak model.
    assert _run(tiny_recipe, "strong.head.cv_folds=2") == 0
    out = capsys.readouterr().out
    assert "[weak] cached" in out and "[ceiling] cached" not in out

    assert main(["report", run_dir]) == 0


def test_unknown_model_is_a_clear_error_and_writes_nothing(tiny_recipe, capsys):
    rc = _run(tiny_recipe, "strong.model=mpnett")
    err = capsys.readouterr().err
    assert rc == 2 and "did you mean 'mpnet'" in err and "Traceback" not in err
    run_dir, _ = os.path.split(_results_path(tiny_recipe))
    assert not os.path.exists(run_dir)


def _results_path(recipe):
    cfg = yaml.safe_load(recipe.read_text())
    return os.path.join(cfg["output_dir"], cfg["name"], "results.json")


@pytest.mark.parametrize("override,message", [
    ("strong.model=" + "{encoder}", "refine needs a causal refiner"),
    ("data.label_field=review", "distinct value"),
    ("data.text_field=body", "column 'body' not in"),
    ("data.n_test=500", "data split too small"),
    ("data.path=/nonexistent/file.jsonl", "data file not found"),
    ("weak.model=./no/such/folder", "unknown model"),
])
def test_bad_data_and_models_exit_2(tiny_recipe, tiny_models, capsys, override, message):
    assert _run(tiny_recipe, override.format(**tiny_models)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unwritable_output_dir(tiny_recipe, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _run(tiny_recipe, f"output_dir={blocker}/runs") == 2
    err = capsys.readouterr().err
    assert "output_dir:" in err and "cannot be created" in err and "is a file" in err


def test_bad_recipe_exit_2(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    p.write_text("data: {name: multiemo}\nweak: {modle: minilm}\n")
    assert main(["run", str(p)]) == 2
    assert "weak.modle: unknown key (did you mean 'mode" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_lora_weak_and_theory_stage_in_a_recipe(tiny_recipe, capsys):
    """LoRA mode trains and saves an adapter; the theory stage runs inside a recipe and lands in the report."""
    overrides = ["weak.mode=lora", "weak.lora.r=4", "weak.train.lr=5e-3", "methods=[naive]", "name=lora",
                 "theory.enabled=true", "theory.two_layer.n_seeds=2", "theory.two_layer.steps=300",
                 "theory.two_layer.n_test=2000", "theory.two_layer.n_pretrain=2000", "theory.two_layer.ablation=false",
                 "theory.logistic.n_pairs=4", "theory.logistic.steps=60", "theory.cnn.enabled=false",
                 "theory.ridge.enabled=false"]  # settings 3a/3b: tests/theory
    assert _run(tiny_recipe, *overrides) == 0
    cfg = yaml.safe_load(tiny_recipe.read_text())
    run_dir = os.path.join(cfg["output_dir"], "lora")
    model_dir = os.path.join(run_dir, "seed0/weak/model")
    assert os.path.exists(os.path.join(model_dir, "adapter_model.safetensors"))
    assert not os.path.exists(os.path.join(model_dir, "model.safetensors"))  # adapters, not full weights
    from peft import AutoPeftModelForSequenceClassification

    reloaded = AutoPeftModelForSequenceClassification.from_pretrained(model_dir)
    assert reloaded.peft_config["default"].r == 4
    res = json.load(open(os.path.join(run_dir, "results.json")))
    assert {p["id"] for p in res["theory"]["predictions"]} >= {f"P{i}" for i in range(1, 13)}
    report = open(os.path.join(run_dir, "report.md")).read()
    assert "## Theory sanity check" in report
    assert os.path.exists(os.path.join(run_dir, "theory", "retention_vs_rho.png"))
    assert "[theory]" in capsys.readouterr().out


def test_theory_command_writes_report(tmp_path, capsys):
    args = ["theory", f"output_dir={tmp_path}", "theory.two_layer.n_seeds=2", "theory.two_layer.steps=200",
            "theory.two_layer.n_test=2000", "theory.two_layer.n_pretrain=2000", "theory.two_layer.ablation=false",
            "theory.logistic.n_pairs=4", "theory.logistic.steps=40", "theory.cnn.enabled=false",
            "theory.ridge.enabled=false"]
    assert main(args) == 0
    assert (tmp_path / "theory" / "theory" / "metrics.json").exists()
    assert "## Theory sanity check" in (tmp_path / "theory" / "report.md").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert "cached" in capsys.readouterr().out
    assert main(["theory", "theory.two_layer.rhos=[2.0]"]) == 2
    # a recipe that switches theory off for `w2s run` still runs it under `w2s theory RECIPE`
    recipe = tmp_path / "no_theory.yaml"
    recipe.write_text("name: nt\ntheory: {enabled: false}\n")
    assert main(["theory", str(recipe), *args[1:]]) == 0
    out = capsys.readouterr().out
    assert "theory predictions held" in out and " 0/0 " not in out
