"""Recipe loading: every shipped recipe validates; user mistakes come back all at once, clearly."""

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config.loading import apply_overrides, describe, load_recipe
from pipeline.errors import UserError

RECIPES = sorted(p for p in Path(__file__).resolve().parents[2].joinpath("recipes").rglob("*.yaml")
                 if "accelerate" not in p.parts)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name


def test_there_are_shipped_recipes():
    assert any(p.name == "quickstart.yaml" for p in RECIPES)


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_all_errors_reported_at_once_with_paths_and_suggestions(tmp_path):
    p = _write(tmp_path, "name: x\ndata:\n  name: multiemo\n  n_tset: 3\nweak:\n  trian: {}\n  mode: fulll\n"
                         "strong:\n  train:\n    lr: fast\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "data.n_tset: unknown key (did you mean 'n_test'?)" in msg
    assert "weak.trian: unknown key (did you mean 'train'?)" in msg
    assert "weak.mode: must be one of" in msg and "did you mean 'full'" in msg
    assert "strong.train.lr: expected number, got 'fast'" in msg
    assert "4 problem(s)" in msg


def test_python_tags_are_refused(tmp_path):
    p = _write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="YAML tag not allowed"):
        load_recipe(p)


def test_malformed_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "name: x\ndata:\n  name: [unclosed\n")
    with pytest.raises(UserError, match="malformed YAML.*line"):
        load_recipe(p)


def test_value_checks(tmp_path):
    p = _write(tmp_path, "data:\n  path: a.jsonl\n  name: multiemo\n  n_test: 0\nevaluate: {ci: 1.5}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "exactly one of data.name" in msg and "data.n_test: must be at least 2" in msg
    assert "evaluate.ci" in msg


def test_unknown_method_and_dataset(tmp_path):
    p = _write(tmp_path, "data: {name: multiemoo}\nmethods: [{name: naiv}]\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert "did you mean 'naive'" in str(e.value)
    p = _write(tmp_path, "data: {name: multiemoo}\n")
    with pytest.raises(UserError, match="did you mean 'multiemo'"):
        load_recipe(p)


def test_overrides_types_and_lists(tmp_path):
    p = _write(tmp_path, "data: {name: multiemo}\nmethods: [naive, {name: naive, id: h, hard: false}]\n")
    r = load_recipe(p, ["weak.train.lr=1e-4", "data.n_test=300", "methods.1.hard=true", "strong.mode=lora"])
    assert r.weak.train.lr == pytest.approx(1e-4) and isinstance(r.weak.train.lr, float)
    assert r.data.n_test == 300 and r.methods[1].hard is True and r.strong.mode == "lora"
    assert load_recipe(p, ["methods[1].hard=true"]).methods[1].hard is True  # Python's index syntax too
    with pytest.raises(UserError, match="not an index of a list of 2"):
        load_recipe(p, ["methods[2].hard=true"])
    with pytest.raises(UserError, match="not of the form"):
        apply_overrides({}, ["data.n_test"])
    with pytest.raises(UserError, match="unknown key"):
        load_recipe(p, ["data.colour=red"])


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    p = _write(tmp_path, "data: {name: multiemo}\nweak: {train: {lr: 5e-5}}\n")
    assert load_recipe(p).weak.train.lr == pytest.approx(5e-5)


def test_validate_command_exit_codes(tmp_path, capsys):
    good = _write(tmp_path, "data: {name: multiemo}\n")
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {nme: multiemo}\n")
    assert main(["validate", str(good), str(bad)]) == 2
    assert "did you mean 'name'" in capsys.readouterr().err


def test_keys_have_help():
    rows = describe()
    keys = {r[0] for r in rows}
    assert {"data.n_transfer", "weak.train.lr", "strong.mode", "theory.enabled"} <= keys
    assert all(r[3] for r in rows), [r[0] for r in rows if not r[3]]


def test_evaluate_baseline_must_name_a_method_of_the_recipe(tmp_path, capsys):
    p = _write(tmp_path, "data: {name: multiemo}\nmethods: [naive, aux_conf]\nevaluate: {baseline: aux_conff}\n")
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "evaluate.baseline: 'aux_conff' is not a method of this recipe (did you mean 'aux_conf'?)" in err
