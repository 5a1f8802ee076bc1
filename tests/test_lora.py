"""Recipe switches on CPU: LoRA saves an adapter that reloads to the same predictions, gradient
checkpointing, bf16 autocast, and mistakes in them are user errors."""

import json

import numpy as np
import pytest
import torch

from pipeline.cli import main


def _recipe(tmp_path, tiny_models, tiny_data, weak: str, extra: str = "", name: str = "sw") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
name: {name}
output_dir: {tmp_path / 'runs'}
data: {{path: {tiny_data}, text_field: review, label_field: sentiment, n_train_weak: 64, n_transfer: 60,
        n_test: 60, max_length: 16}}
weak: {weak}
strong: {{model: {tiny_models['encoder']}, mode: head, head: {{cv_folds: 3, l2_grid: [1.0]}}}}
methods: [naive]
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
{extra}
""")
    return str(path)


def test_lora_saves_an_adapter_that_reloads_to_the_same_predictions(tmp_path, tiny_models, tiny_data):
    from peft import AutoPeftModelForSequenceClassification

    from pipeline import models
    from pipeline.predict import predict_proba

    weak = (f"{{model: {tiny_models['encoder']}, mode: lora, lora: {{r: 4, alpha: 8}}, "
            "train: {epochs: 6, lr: 5.0e-2, batch_size: 8}}")
    assert main(["run", _recipe(tmp_path, tiny_models, tiny_data, weak), "--no-progress"]) == 0
    saved = tmp_path / "runs/sw/seed0/weak/model"
    files = {p.name for p in saved.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "model.safetensors" not in files
    adapter_cfg = json.loads((saved / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and set(adapter_cfg["target_modules"]) == {"query", "value"}  # peft's BERT default
    assert any("classifier" in m for m in adapter_cfg["modules_to_save"])  # the head trains and is saved
    reloaded = AutoPeftModelForSequenceClassification.from_pretrained(str(saved))
    tok = models.load_tokenizer(str(saved))
    from accelerate import Accelerator

    rows = [json.loads(line) for line in (tmp_path / "runs/sw/seed0/weak/predictions.jsonl").read_text().splitlines()]
    import datasets

    test = datasets.load_from_disk(str(tmp_path / "runs/sw/data/test"))
    probs = predict_proba(reloaded, tok, list(test["text"]), 16, 16, Accelerator())
    assert np.allclose(probs[:, 1], [r["prob"] for r in rows], atol=1e-5)
    assert abs(probs[:, 1].std()) > 1e-3  # it learned something: predictions are not constant


def test_lora_head_is_trainable_and_unknown_architectures_fall_back_to_all_linear(tiny_models):
    from pipeline import models
    from pipeline.config.schema import LoraConfig, ModelConfig

    tok = models.load_tokenizer(tiny_models["encoder"])
    m = models.load_classifier(tiny_models["encoder"], tok, "lora", LoraConfig(r=2))
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable) and any("lora_" in n for n in trainable)
    assert not any("embeddings" in n for n in trainable)
    bad = ModelConfig(model=tiny_models["encoder"], mode="lora", lora=LoraConfig(target_modules=["nope"]))
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="match no module"):
        models.load_classifier(tiny_models["encoder"], tok, "lora", bad.lora, bad)


def test_gradient_checkpointing_and_attention_switches_run(tmp_path, tiny_models, tiny_data, capsys):
    weak = (f"{{model: {tiny_models['decoder']}, mode: full, gradient_checkpointing: true, attn_implementation: sdpa, "
            "train: {epochs: 1, lr: 1.0e-3, batch_size: 8}}")
    assert main(["run", _recipe(tmp_path, tiny_models, tiny_data, weak, name="ckpt"), "--no-progress"]) == 0
    weak_bad = f"{{model: {tiny_models['decoder']}, mode: full, attn_implementation: no_such_kernel}}"
    assert main(["run", _recipe(tmp_path, tiny_models, tiny_data, weak_bad, name="badattn"), "--no-progress"]) == 2
    assert "attn_implementation" in capsys.readouterr().err


def test_bf16_mixed_precision_runs_on_cpu_and_fp16_is_refused(tmp_path, tiny_models, tiny_data, capsys):
    weak = f"{{model: {tiny_models['encoder']}, mode: full, train: {{epochs: 1, lr: 1.0e-3, batch_size: 8}}}}"
    if torch.cuda.is_available():
        pytest.skip("the CPU-only checks assume no GPU")
    recipe = _recipe(tmp_path, tiny_models, tiny_data, weak, "runtime: {mixed_precision: bf16}", name="bf16")
    assert main(["run", recipe, "--no-progress"]) == 0
    env = json.loads((tmp_path / "runs/bf16/env.json").read_text())
    assert env["mixed_precision"] == "bf16"
    recipe = _recipe(tmp_path, tiny_models, tiny_data, weak, "runtime: {mixed_precision: fp16}", name="fp16")
    assert main(["run", recipe, "--no-progress"]) == 2
    assert "fp16 needs a GPU" in capsys.readouterr().err


def test_unknown_tracker_is_a_user_error(tmp_path, tiny_models, tiny_data, capsys):
    weak = f"{{model: {tiny_models['encoder']}, mode: head}}"
    recipe = _recipe(tmp_path, tiny_models, tiny_data, weak, "runtime: {trackers: [nonsense]}", name="tr")
    assert main(["run", recipe, "--no-progress"]) == 2
    assert "unknown tracker 'nonsense'" in capsys.readouterr().err


def test_tensorboard_tracker_logs_training_curves(tmp_path, tiny_models, tiny_data):
    pytest.importorskip("tensorboard", reason="the tracker is opt-in: pip install tensorboard")
    weak = f"{{model: {tiny_models['encoder']}, mode: full, train: {{epochs: 1, lr: 1.0e-3, batch_size: 8}}}}"
    recipe = _recipe(tmp_path, tiny_models, tiny_data, weak, "runtime: {trackers: [tensorboard]}", name="tb")
    assert main(["run", recipe, "--no-progress"]) == 0
    events = list((tmp_path / "runs/tb/trackers").rglob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for e in events:
        acc = EventAccumulator(str(e))
        acc.Reload()
        tags |= set(acc.Tags().get("scalars", []))
    assert "weak: train/loss" in tags and "weak: train/lr" in tags
