"""Mid-stage checkpoints: a fine-tune killed after a checkpoint resumes from it (not from step 0) and
ends with the weights of an uninterrupted run; a stage killed mid-training resumes in the next run."""

import json

import numpy as np
import pytest
import torch


def _train(tiny_models, checkpoint_dir, stop_after=None, mode="full"):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from pipeline import models
    from pipeline.config.schema import LoraConfig, TrainConfig
    from pipeline.train.loop import finetune
    from tests.conftest import make_rows

    rows = make_rows(48, seed=4)
    texts = [r["review"] for r in rows]
    y = np.array([r["sentiment"] == "pos" for r in rows], dtype=int)
    tok = models.load_tokenizer(tiny_models["encoder"])
    set_seed(0)
    model = models.load_classifier(tiny_models["encoder"], tok, mode, lora_cfg=LoraConfig())  # LoRA dropout 0.05
    cfg = TrainConfig(epochs=3, lr=2e-3, batch_size=8, checkpoint_every=4)  # 6 steps per epoch, 18 in all
    acc = Accelerator()
    if stop_after is not None:  # a kill: the process dies inside a backward pass
        calls, backward = [0], acc.backward

        def dying(loss, **kw):
            calls[0] += 1
            if calls[0] > stop_after:
                raise KeyboardInterrupt
            return backward(loss, **kw)
        acc.backward = dying
    out = finetune(model, tok, texts, np.eye(2)[y], cfg, 16, acc, seed=0, checkpoint_dir=checkpoint_dir)
    return out, {k: v.detach().clone() for k, v in out["model"].state_dict().items()}


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_killed_finetune_resumes_from_its_checkpoint_with_the_uninterrupted_weights(tmp_path, tiny_models, mode):
    """In LoRA mode the checkpoint holds the adapter and head, and the resumed run draws the same LoRA
    dropout masks (RNG states restored)."""
    _, reference = _train(tiny_models, None, mode=mode)
    ckpt = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_models, ckpt, stop_after=10, mode=mode)  # dies in step 11, after the checkpoint of step 8
    assert json.loads((ckpt / "state" / "position.json").read_text())["step"] == 8
    out, weights = _train(tiny_models, ckpt, mode=mode)
    assert out["resumed_from_step"] == 8 and out["steps"] == 18
    assert all(torch.allclose(weights[k], reference[k], atol=1e-6) for k in reference)
    assert not (ckpt / "state").exists()  # deleted when the run finished


def test_a_stage_killed_mid_training_resumes_from_its_checkpoint_in_the_next_run(tiny_recipe, capsys):
    """The weak stage dies at step 11 of 48 (checkpoints every 4 steps): the next `w2s run` keeps that
    checkpoint (same cache key), resumes at step 8, says so in the report, and its weak labels equal those of
    an uninterrupted run; the finished stage deletes its checkpoint."""
    import yaml
    from conftest import interrupted_backward

    from pipeline.cli import main

    args = ["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "methods=[naive]",
            "weak.train.checkpoint_every=4"]
    root = yaml.safe_load(tiny_recipe.read_text())["output_dir"]
    assert main([*args, "name=clean"]) == 0
    with interrupted_backward(10):
        assert main([*args, "name=killed"]) == 130  # Ctrl-C's exit status
    weak = f"{root}/killed/seed0/weak"
    assert json.loads(open(f"{weak}/checkpoints/state/position.json").read())["step"] == 8
    capsys.readouterr()
    assert main([*args, "name=killed"]) == 0
    metrics = json.loads(open(f"{weak}/metrics.json").read())
    assert metrics["resumed_from_step"] == 8 and metrics["train_steps"] == 48
    clean = [json.loads(line) for line in open(f"{root}/clean/seed0/weak/predictions.jsonl")]
    again = [json.loads(line) for line in open(f"{weak}/predictions.jsonl")]
    assert again == clean
    import os

    assert not os.path.exists(f"{weak}/checkpoints")
    assert "ran, resumed from its checkpoint at step 8" in open(f"{root}/killed/report.md").read()


def test_checkpoint_minutes_saves_when_that_much_time_passed(monkeypatch, tmp_path):
    """`checkpoint_minutes` alone: a save is due once the minutes since the last save have passed, not
    before, never at the last step (the stage's own save follows), and never with early stopping."""
    from pipeline.config.schema import TrainConfig
    from pipeline.train import loop

    now = [1000.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: now[0])
    ckpts = loop.Checkpoints(tmp_path, TrainConfig(checkpoint_minutes=0.5), accelerator=None)
    assert ckpts.on and not ckpts.due(3, 10)
    now[0] += 29.0
    assert not ckpts.due(4, 10)
    now[0] += 2.0
    assert ckpts.due(5, 10) and not ckpts.due(10, 10)
    stopping = TrainConfig(checkpoint_minutes=0.5)
    stopping.early_stopping.enabled = True
    assert not loop.Checkpoints(tmp_path, stopping, accelerator=None).on
