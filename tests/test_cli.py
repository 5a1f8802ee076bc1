"""The command line a new user meets: one preflight reporting every problem, a dry run that writes
nothing, light commands that import no model stack, and the listing commands."""

import json
import subprocess
import sys

from pipeline.cli import main


def test_every_problem_of_a_recipe_is_reported_at_once_by_validate_and_run(tiny_recipe, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = ["data.text_field=body", "data.n_test=5000", f"output_dir={blocker}"]
    assert main(["validate", str(tiny_recipe), *bad]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "column 'body' not in" in err
    assert "= 5120, but the data has 240 rows" in err and "is a file" in err
    assert main(["run", str(tiny_recipe), *bad]) == 2
    assert "3 problem(s)" in capsys.readouterr().err
    assert main(["validate", str(tiny_recipe)]) == 0 and "ok" in capsys.readouterr().out


def test_an_unreachable_hub_id_fails_in_preflight_before_anything_runs(tiny_recipe, tmp_path, capsys):
    assert main(["run", str(tiny_recipe), "--no-progress", "strong.model=someone/not-a-cached-model"]) == 2
    err = capsys.readouterr().err
    assert "strong.model: hub id 'someone/not-a-cached-model' is not in the local cache" in err
    assert not (tmp_path / "runs").exists()  # nothing written: no half run directory


def test_dry_run_shows_the_plan_and_writes_nothing(tiny_recipe, tmp_path, capsys):
    assert main(["run", str(tiny_recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# resolved recipe" in out and "n_transfer: 60" in out and "nothing was written" in out
    assert "seed0/transfer/selective" not in out  # one seed: plain labels
    assert "transfer/selective" in out and " new " in out
    assert not (tmp_path / "runs").exists()


def test_light_commands_import_no_model_stack():
    code = ("import sys, pipeline.cli, pipeline.config.loading, pipeline.preflight, pipeline.stages.report; "
            "from pipeline.config.loading import load_recipe, describe; describe(); "
            "load_recipe('recipes/quickstart.yaml'); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"


def test_listing_commands(tmp_path, capsys):
    assert main(["data", "list"]) == 0 and "multiemo" in capsys.readouterr().out
    assert main(["models"]) == 0 and "minilm" in capsys.readouterr().out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned on the refined labels." in out  # whole first paragraphs, not cut lines
    assert main(["keys", "methods"]) == 0
    keys = capsys.readouterr().out
    assert keys.count("methods[].seeds") == 1 and "methods[name=refine].shots" in keys
    assert "methods[name=refine].seeds" not in keys  # shared keys once, not per method


def test_runs_and_compare(tmp_path, capsys):
    for name, acc in (("a", 0.8), ("b", 0.9)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text("name: x\n")
        entry = {"accuracy": {"value": acc}, "auroc": {"value": acc}}
        res = {"weak": entry, "ceiling": entry, "data": {"summary": "tiny"}, "seeds": [0],
               "methods": {"naive": {**entry, "pgr": {"accuracy": {"value": 0.5}}}}}
        (run / "results.json").write_text(json.dumps(res))
        (run / "report.md").write_text("# report")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.yaml").write_text("name: c\n")  # started, never finished
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("a ") and "finished" in out[0] and "naive 0.50" in out[0]
    assert "unfinished" in out[2] and "no results yet" in out[2]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "80.00" in out and "90.00" in out and "0.50" in out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2


def test_preflight_checks_the_global_batch_against_the_process_count(tiny_recipe):
    from pipeline.config.loading import load_recipe
    from pipeline.preflight import problems

    recipe = load_recipe(tiny_recipe)  # weak: full mode, batch 8; strong: head mode (no batch)
    assert problems(recipe, num_processes=4) == []
    found = problems(recipe, num_processes=3)
    assert found == ["weak.train.batch_size: 8 is the global batch and must divide evenly over 3 processes; "
                     "use a multiple of 3, e.g. 9"]


def test_validate_and_dry_run_check_batches_against_a_given_or_launched_process_count(tiny_recipe, capsys,
                                                                                      monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["validate", str(tiny_recipe)]) == 0
    assert main(["validate", str(tiny_recipe), "--num-processes", "4"]) == 0
    capsys.readouterr()
    assert main(["validate", str(tiny_recipe), "--num-processes", "3"]) == 2
    assert "must divide evenly over 3 processes" in capsys.readouterr().err
    assert main(["validate", str(tiny_recipe), "--schema-only", "--num-processes", "3"]) == 2  # no data read
    assert "must divide evenly over 3 processes" in capsys.readouterr().err
    assert main(["run", str(tiny_recipe), "--dry-run", "--num-processes", "3"]) == 2
    assert "use a multiple of 3, e.g. 9" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "3")  # as under `accelerate launch --num_processes 3` (or torchrun)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["run", str(tiny_recipe), "--dry-run"]) == 2
    assert "over 3 processes" in capsys.readouterr().err
    assert main(["validate", str(tiny_recipe)]) == 0  # validate is not launched: its count is given or unknown
    assert main(["run", str(tiny_recipe), "--num-processes", "3"]) == 2  # not a launcher
    assert "accelerate launch --num_processes 3" in capsys.readouterr().err
    assert main(["validate", str(tiny_recipe), "--num-processes", "0"]) == 2
    assert "--num-processes must be at least 1" in capsys.readouterr().err
    assert not (tiny_recipe.parent / "runs").exists()  # nothing written
