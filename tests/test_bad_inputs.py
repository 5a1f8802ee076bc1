"""Bad inputs, each a test: one message naming the thing and the fix, exit 2, no traceback, nothing written.
(More cases live beside the code they guard: test_runner, test_cli, test_lock, test_models_verify,
data/test_sources, config/test_config_loading.)"""

import json
import os

import pytest
import yaml

from pipeline.cli import main


def _validate(recipe, capsys, *overrides) -> str:
    assert main(["validate", str(recipe), *overrides]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _data(tmp_path, rows, name="d.jsonl", raw: bytes | None = None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _rows(n=200):
    return [{"review": f"text number {i}", "sentiment": ["neg", "pos"][i % 2]} for i in range(n)]


def test_a_key_set_twice_in_a_recipe(tiny_recipe, capsys):
    text = tiny_recipe.read_text().replace("name: tiny", "name: tiny\nname: tiny2")
    tiny_recipe.write_text(text)
    err = _validate(tiny_recipe, capsys)
    assert "name" in err and "twice" in err


def test_an_empty_data_file(tiny_recipe, tmp_path, capsys):
    err = _validate(tiny_recipe, capsys, f"data.path={_data(tmp_path, [])}")
    assert "empty" in err or "no usable examples" in err


def test_labels_that_are_missing_or_null_are_dropped_and_counted(tiny_recipe, tmp_path, capsys):
    rows = _rows()
    for r in rows[:5]:
        r["sentiment"] = None
    p = _data(tmp_path, rows)
    assert main(["validate", str(tiny_recipe), f"data.path={p}"]) == 0
    from pipeline.config.schema import DataConfig
    from pipeline.data import load_source

    src = load_source(DataConfig(path=str(p), text_field="review", label_field="sentiment"))
    assert src.info["dropped"] == 5 and len(src) == 195


def test_non_utf8_bytes_in_a_data_file(tiny_recipe, tmp_path, capsys):
    raw = b'{"review": "caf\xe9 ok", "sentiment": "pos"}\n' * 10
    err = _validate(tiny_recipe, capsys, f"data.path={_data(tmp_path, None, raw=raw)}")
    assert "UTF-8" in err and "d.jsonl" in err


def test_no_seeds(tiny_recipe, capsys):
    err = _validate(tiny_recipe, capsys, "seeds=[]")
    assert "seeds" in err


def test_a_method_listed_twice_with_the_same_id(tiny_recipe, capsys):
    err = _validate(tiny_recipe, capsys, "methods=[naive, naive]")
    assert "naive" in err and ("twice" in err or "duplicate" in err) and "id:" in err


def test_a_prompt_template_without_text(tiny_recipe, capsys):
    err = _validate(tiny_recipe, capsys, "methods=[{name: refine, prompt: 'Review: Sentiment:'}]")
    assert "{text}" in err


def test_verbalizers_that_are_not_single_tokens(tiny_recipe, tiny_models, capsys):
    err = _validate(tiny_recipe, capsys, f"strong.model={tiny_models['decoder']}",
                    "methods=[{name: refine, prompt: 'Review: {text} Sentiment:', verbalizers: [bad bad, good]}]")
    assert "single token" in err


def test_a_model_folder_without_a_tokenizer(tiny_recipe, tiny_models, tmp_path, capsys):
    import shutil

    folder = tmp_path / "no-tok"
    folder.mkdir()
    for f in os.listdir(tiny_models["encoder"]):
        if f.endswith(".json") and "token" not in f or f.endswith(".safetensors"):
            shutil.copy(os.path.join(tiny_models["encoder"], f), folder / f)
    err = _validate(tiny_recipe, capsys, f"weak.model={folder}")
    assert "tokenizer" in err and str(folder) in err


def test_a_read_only_output_dir(tiny_recipe, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        err = _validate(tiny_recipe, capsys, f"output_dir={ro}")
        assert "cannot be written" in err
    finally:
        ro.chmod(0o755)


def test_report_on_a_run_that_never_finished(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "runs" / "half"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "half"}))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "results.json" in err


def test_a_diverging_loss_stops_with_the_stage_and_step_named(tiny_recipe, capsys):
    rc = main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "methods=[naive]",
               "weak.train.lr=1.0e+30", "weak.train.max_grad_norm=0"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "not finite" in err and "step" in err and "weak" in err and "lr" in err


def test_a_truncated_features_cache_is_recomputed(tiny_recipe, capsys):
    args = ["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "methods=[naive]"]
    assert main(args) == 0
    run = os.path.join(yaml.safe_load(tiny_recipe.read_text())["output_dir"], "tiny")
    before = json.load(open(os.path.join(run, "results.json")))["methods"]["naive"]["accuracy"]["value"]
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(run, "features")) for f in fs
             if f.endswith(".safetensors")]
    assert files
    for f in files:
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    assert main([*args, "--force-stage", "ceiling"]) == 0
    assert json.load(open(os.path.join(run, "results.json")))["methods"]["naive"]["accuracy"]["value"] == before
