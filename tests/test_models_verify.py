"""Packaged weights are verified: a pinned source file with another sha256 is refused before anything is
prepared; a prepared folder whose weights were truncated or changed is a clear error, and `w2s models
prepare` prepares it again. A stand-in alias (tiny model, fake package) keeps the real weights out of it."""

import shutil
from pathlib import Path

import pytest

from pipeline import models
from pipeline.cli import main
from pipeline.errors import UserError


@pytest.fixture
def fake_alias(tmp_path, tiny_models, monkeypatch):
    source = Path(tiny_models["encoder"])
    weights = source / "model.safetensors"
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(models.PINS, "fake-weights", models.sha256_file(weights))

    def prepare(out: Path) -> None:
        models.verified(weights, "fake-weights")
        for f in source.iterdir():
            shutil.copy2(f, out / f.name)

    monkeypatch.setitem(models.ALIASES, "tiny", models.Alias((), "encoder", "1M", "test", prepare))
    monkeypatch.setattr(models, "check_spec", lambda spec: None if spec == "tiny" else "unknown")
    return tmp_path / "cache" / "models" / "tiny"


def test_a_damaged_prepared_model_is_found_and_prepared_again(fake_alias, capsys):
    folder = Path(models.resolve("tiny"))
    assert folder == fake_alias and (folder / models.MANIFEST).exists()
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # truncated (a full disk, a killed copy)
    with pytest.raises(UserError, match="(?s)damaged: model.safetensors is .* bytes.*w2s models prepare tiny"):
        models.resolve("tiny")
    assert main(["models", "prepare", "tiny"]) == 0
    assert "preparing it again" in capsys.readouterr().out and weights.read_bytes() == good
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, other bytes: found by prepare's sha256
    models.resolve("tiny")  # a run's cheap size check passes it
    assert main(["models", "prepare", "tiny"]) == 0
    assert "with other content" in capsys.readouterr().out and weights.read_bytes() == good


def test_a_source_file_with_another_sha256_is_refused_and_nothing_is_prepared(fake_alias, monkeypatch, capsys):
    monkeypatch.setitem(models.PINS, "fake-weights", "0" * 64)
    with pytest.raises(UserError, match="(?s)has sha256 .* expected 0000.*force-reinstall fake-weights"):
        models.resolve("tiny")
    assert not fake_alias.exists() and not list(fake_alias.parent.iterdir())  # no half-prepared folder
    assert main(["models", "prepare", "tiny"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_interrupted_prepare_leaves_no_folder_and_the_next_run_prepares(fake_alias, monkeypatch, capsys):
    """Ctrl-C (or a kill) mid-prepare: the half-written copy lives in a temporary sibling folder, never under
    the alias's name, so nothing uses it; the next resolve prepares from scratch."""
    prepare = models.ALIASES["tiny"].prepare

    def interrupted(out: Path) -> None:
        prepare(out)
        (out / "model.safetensors").write_bytes(b"half")  # dies while copying the weights
        raise KeyboardInterrupt

    monkeypatch.setitem(models.ALIASES, "tiny", models.Alias((), "encoder", "1M", "test", interrupted))
    with pytest.raises(KeyboardInterrupt):
        models.resolve("tiny")
    assert not fake_alias.exists() and not list(fake_alias.parent.iterdir())  # Ctrl-C cleans up after itself
    stale = fake_alias.parent / ".tiny-killed"  # what a SIGKILL leaves: a temporary folder with half a copy
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    monkeypatch.setitem(models.ALIASES, "tiny", models.Alias((), "encoder", "1M", "test", prepare))
    assert main(["models", "prepare", "tiny"]) == 0
    assert (fake_alias / models.MANIFEST).exists() and models.resolve("tiny") == str(fake_alias)
    models.check_prepared("tiny", fake_alias, full=True)


def test_verbalizer_verdicts_are_remembered_per_tokenizer_files(tmp_path, tiny_models, monkeypatch):
    """validate and run check verbalizers against the tokenizer on disk; the verdict is kept in the cache so a
    re-run does not load the tokenizer again, and a changed tokenizer file is checked afresh."""
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "decoder"
    shutil.copytree(tiny_models["decoder"], folder)
    loads = []
    real = models.load_tokenizer
    monkeypatch.setattr(models, "load_tokenizer", lambda path: loads.append(path) or real(path))
    assert models.verbalizer_problem(str(folder), ["bad", "good"]) is None
    assert "2 tokens" in models.verbalizer_problem(str(folder), ["bad", "very good"])
    assert len(loads) == 2
    assert models.verbalizer_problem(str(folder), ["bad", "good"]) is None
    assert "2 tokens" in models.verbalizer_problem(str(folder), ["bad", "very good"])
    assert len(loads) == 2  # both verdicts remembered
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text().replace("{", '{"model_max_length": 77, ', 1))
    assert models.verbalizer_problem(str(folder), ["bad", "good"]) is None
    assert len(loads) == 3  # another tokenizer file: checked again
    tokenizer = real(str(folder))  # a run that loaded the tokenizer anyway records its verdict
    assert "2 tokens" in models.verbalizer_problem(str(folder), ["good", "very bad"], tokenizer)
    assert "2 tokens" in models.verbalizer_problem(str(folder), ["good", "very bad"])
    assert len(loads) == 3
