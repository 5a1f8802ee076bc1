"""Bad inputs, each a test: one message naming the thing and the fix, exit 2, no traceback, nothing written.

The matrix and where each case is tested (here unless named):
 1 a key set twice in a recipe            2 an empty data file             3 null / missing labels (dropped, counted)
 4 non-UTF-8 bytes in a data file         5 seeds: []                       6 a method listed twice with one id
 7 a prompt template without {text}       8 verbalizers not single tokens   9 a model folder without a tokenizer
10 output_dir read-only                  11 output_dir not creatable (/proc) 12 output_dir (the run dir) is a file
13 output_dir under a file (test_runner)  14 `w2s report` on an unfinished run  15 a diverging loss (stage, step)
16 a truncated features cache (recomputed) 17/18 a truncated / garbage safetensors file in a model folder
19 a weights file damaged after validation (load error)  20 a run directory of another run format (run, report)
21 inputs longer than max_length (warned, counted)       22 a damaged mid-training checkpoint in a stage folder
23 a prepared model truncated or changed (test_models_verify)  24 a pinned source file with another sha256 (same)
25 an interrupted `w2s models prepare` (same)  26 a run directory in use, 27 a stale lock, 28 a lock of another
host (test_lock)  29 the same name on other data (test_lock)  30 an unknown model alias (test_runner)
31-36 refine without a causal model, a one-valued label field, a missing column, a split larger than the data,
a missing data file, a missing model folder (test_runner)  37 an unknown key with a suggestion, 38 a missing
recipe file (test_runner)  39 Python tags in YAML, 40 malformed YAML (config/test_config_loading)  41 every
problem at once, 42 an unreachable hub id before anything runs, 43 a global batch the process count does not
divide (test_cli)  44 an unknown template placeholder, 45 a local copy in the wrong schema, 46 `w2s data
prepare` without a hub (data/test_sources).
"""

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
    # a float label column (pandas' way of storing a missing value is NaN): NaN is missing, not a third class
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [float("nan") if i < 7 else float(i % 2) for i in range(200)]
    pq.write_table(pa.table({"review": [r["review"] for r in rows], "sentiment": labels}), tmp_path / "f.parquet")
    src = load_source(DataConfig(path=str(tmp_path / "f.parquet"), text_field="review", label_field="sentiment"))
    assert src.info["dropped"] == 7 and len(src) == 193
    # a generation task's numeric answer column: NaN is a missing answer, not the reference answer "nan"
    answers = [float("nan") if i < 4 else float(i) for i in range(200)]
    pq.write_table(pa.table({"q": [r["review"] for r in rows], "a": answers}), tmp_path / "g.parquet")
    src = load_source(DataConfig(path=str(tmp_path / "g.parquet"), prompt_field="q", answer_field="a"), "generation")
    assert src.info["dropped"] == 4 and len(src) == 196


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


def test_a_read_only_output_dir(tiny_recipe, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root writes through permission bits: a read-only mount is what stops it
            import errno
            import tempfile

            def read_only(*a, dir=None, **k):
                if str(dir).startswith(str(ro)):
                    raise OSError(errno.EROFS, "Read-only file system")
                return tempfile.mkdtemp(*a, dir=dir, **k)
            monkeypatch.setattr(tempfile, "TemporaryDirectory", lambda *a, **k: _Removed(read_only(*a, **k)))
        err = _validate(tiny_recipe, capsys, f"output_dir={ro}")
        assert "cannot be created or written" in err and str(ro) in err
    finally:
        ro.chmod(0o755)


class _Removed:
    def __init__(self, path):
        self.path = path

    def cleanup(self):
        os.rmdir(self.path)


def test_an_output_dir_that_is_a_file(tiny_recipe, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").write_text("a file where the run directory would go")
    err = _validate(tiny_recipe, capsys)
    assert "is a file, not a folder" in err


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


def _copy_model(tiny_models, tmp_path, name="copy"):
    import shutil

    folder = tmp_path / name
    shutil.copytree(tiny_models["encoder"], folder)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_safetensors_file_in_a_model_folder(tiny_recipe, tiny_models, tmp_path, capsys, damage):
    folder = _copy_model(tiny_models, tmp_path)
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2] if damage == "truncated" else os.urandom(len(good)))
    err = _validate(tiny_recipe, capsys, f"weak.model={folder}")
    assert "model.safetensors" in err and "cannot be loaded" in err and "save" in err
    assert main(["run", str(tiny_recipe), "--no-progress", f"weak.model={folder}"]) == 2  # refused before data
    run = os.path.join(yaml.safe_load(tiny_recipe.read_text())["output_dir"], "tiny")
    assert not os.path.exists(os.path.join(run, "data"))


def test_a_weights_file_damaged_after_validation_is_a_clear_load_error(tiny_models, tmp_path):
    """Between `w2s validate` and loading (a second job rewriting the folder): transformers' error on a
    damaged safetensors file is not an OSError; it still ends as one message, not a traceback."""
    from pipeline import models
    from pipeline.errors import UserError

    folder = _copy_model(tiny_models, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    tok = models.load_tokenizer(str(folder))
    with pytest.raises(UserError, match="could not load .* header"):
        models.load_classifier(str(folder), tok, "full")


def test_an_output_dir_that_cannot_be_created(tiny_recipe, capsys):
    err = _validate(tiny_recipe, capsys, "output_dir=/proc/w2s-runs")
    assert "output_dir" in err and "/proc/w2s-runs" in err and "cannot be created" in err
    assert main(["run", str(tiny_recipe), "--no-progress", "output_dir=/proc/w2s-runs"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_run_directory_made_by_an_incompatible_version(tiny_recipe, capsys):
    args = ["run", str(tiny_recipe), "--no-progress", "methods=[naive]"]
    assert main(args) == 0
    run = os.path.join(yaml.safe_load(tiny_recipe.read_text())["output_dir"], "tiny")
    for name in ("env.json", "results.json"):
        path = os.path.join(run, name)
        made = json.load(open(path))
        json.dump({**made, "run_format": 99, "w2s": "9.0.0"}, open(path, "w"))
    results = open(os.path.join(run, "results.json")).read()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "w2s 9.0.0 (run format 99)" in err and "--force" in err and "Traceback" not in err
    assert open(os.path.join(run, "results.json")).read() == results  # untouched
    assert main(["report", run]) == 2
    assert "run format 99" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert json.load(open(os.path.join(run, "results.json")))["run_format"] == 1


def test_texts_longer_than_max_length_are_counted_and_truncated_with_a_warning(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe), "--no-progress", "methods=[naive]", "data.max_length=4"]) == 0
    err = capsys.readouterr().err
    # the tiny tokenizer: one token per word plus [CLS] and [SEP]; the tiny texts have 3-8 words
    warned = [line for line in err.splitlines() if line.startswith("warning:") and "data.max_length = 4" in line]
    assert warned and all("raise data.max_length" in line for line in warned)
    assert any(" of split train_weak " in line for line in warned)
    run = os.path.join(yaml.safe_load(tiny_recipe.read_text())["output_dir"], "tiny")
    weak = json.load(open(os.path.join(run, "seed0", "weak", "metrics.json")))
    n_over = weak["truncated_inputs"]["train_weak"]
    assert 0 < n_over <= 60 and f"warning: {n_over} of 60 inputs of split train_weak" in err


def test_a_damaged_mid_training_checkpoint_is_named_and_force_stage_starts_over(tiny_recipe, capsys):
    from conftest import interrupted_backward

    args = ["run", str(tiny_recipe), "--no-progress", "methods=[naive]", "weak.train.checkpoint_every=4"]
    with interrupted_backward(10):
        assert main(args) == 130
    run = os.path.join(yaml.safe_load(tiny_recipe.read_text())["output_dir"], "tiny")
    state = os.path.join(run, "seed0", "weak", "checkpoints", "state")
    damaged = [os.path.join(state, f) for f in os.listdir(state) if f.startswith(("model", "optimizer"))]
    assert damaged
    for f in damaged:
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 3)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "cannot be read" in err and "--force-stage" in err and "Traceback" not in err
    assert main([*args, "--force-stage", "weak"]) == 0
    assert "resumed_from_step" not in json.load(open(os.path.join(run, "seed0", "weak", "metrics.json")))
