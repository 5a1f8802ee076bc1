"""Scale-out: the shipped accelerate configs parse, and a 2-process CPU run (gloo) through
`accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml` gives the 1-process run's results."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


def test_every_shipped_accelerate_config_parses():
    from accelerate.commands.config.config_args import load_config_from_file

    names = {c.name for c in CONFIGS}
    assert names >= {"cpu.yaml", "cpu_ddp.yaml", "single_gpu.yaml", "multi_gpu.yaml", "fsdp.yaml",
                     "deepspeed_zero2.yaml"}
    for path in CONFIGS:
        cfg = load_config_from_file(str(path))
        assert cfg.num_processes >= 1 and cfg.compute_environment.value == "LOCAL_MACHINE", path.name
    fsdp = load_config_from_file(str(ROOT / "recipes/accelerate/fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert load_config_from_file(str(ROOT / "recipes/accelerate/deepspeed_zero2.yaml")).deepspeed_config[
        "zero_stage"] == 2
    ddp = load_config_from_file(str(ROOT / "recipes/accelerate/cpu_ddp.yaml"))
    assert ddp.num_processes == 2 and ddp.distributed_type.value == "MULTI_GPU" and not ddp.use_cpu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def no_dropout_encoder(tmp_path, tiny_models) -> str:
    """The tiny BERT without dropout: then 2 ranks and 1 process differ only in reduction order."""
    import shutil

    from transformers import AutoConfig, BertModel

    cfg = AutoConfig.from_pretrained(tiny_models["encoder"])
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    out = tmp_path / "bert-no-dropout"
    BertModel.from_pretrained(tiny_models["encoder"], config=cfg).save_pretrained(out)
    for f in Path(tiny_models["encoder"]).iterdir():
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return str(out)


def test_two_cpu_processes_reproduce_one_process(tmp_path, tiny_models, tiny_data, no_dropout_encoder):
    recipe = tmp_path / "ddp.yaml"
    recipe.write_text(f"""
name: ddp
output_dir: {tmp_path / 'one'}
data: {{path: {tiny_data}, text_field: review, label_field: sentiment, n_train_weak: 64, n_transfer: 61,
        n_test: 59, max_length: 16}}
weak:
  model: {no_dropout_encoder}
  mode: full
  train: {{epochs: 4, lr: 1.0e-2, batch_size: 8, eval_batch_size: 7}}
strong:
  model: {tiny_models['decoder']}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}
  train: {{eval_batch_size: 5}}
methods: [naive, {{name: naive, id: naive_hard, hard: true}}]
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_ddp.yaml"),
           "--main_process_port", str(_free_port()), "-m", "pipeline", "run", str(recipe), "--no-progress",
           f"output_dir={tmp_path / 'two'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, two = tmp_path / "one" / "ddp", tmp_path / "two" / "ddp"
    env = json.loads((two / "env.json").read_text())
    assert env["num_processes"] == 2 and env["device"].startswith("cpu")
    assert proc.stdout.count("[evaluate]") == 1  # only rank 0 logs
    for stage in ("seed0/weak", "seed0/ceiling", "seed0/transfer/naive", "seed0/transfer/naive_hard"):
        a, b = _rows(one / stage / "predictions.jsonl"), _rows(two / stage / "predictions.jsonl")
        assert [r["id"] for r in a] == [r["id"] for r in b] and len(b) == 59  # uneven shards: none lost or doubled
        assert [r["label"] for r in a] == [r["label"] for r in b]
    # the weak model trained on 2 ranks: same steps on the same global batches (each split in two halves,
    # DDP averages the halves' gradients), so only floating-point reduction order differs (measured: 1e-6,
    # the rounding of predictions.jsonl). Dropout would differ per rank, hence the dropout-free encoder.
    wa = _rows(one / "seed0/weak/predictions.jsonl")
    wb = _rows(two / "seed0/weak/predictions.jsonl")
    assert max(abs(x["prob"] - y["prob"]) for x, y in zip(wa, wb)) < 1e-4
    m1, m2 = (json.loads((d / "seed0/weak/metrics.json").read_text()) for d in (one, two))
    assert m1["train_steps"] == m2["train_steps"] == 4 * 8  # 64 / 8 = 8 full global batches per epoch either way
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    for key in ("weak", "ceiling"):
        assert r1[key]["accuracy"]["value"] == r2[key]["accuracy"]["value"]
    for key in ("naive", "naive_hard"):
        assert r1["methods"][key]["accuracy"]["value"] == r2["methods"][key]["accuracy"]["value"]
    labels1 = json.loads((one / "data/metrics.json").read_text())["splits"]
    labels2 = json.loads((two / "data/metrics.json").read_text())["splits"]
    assert labels1 == labels2
    # only rank 0 wrote: no stray temporary folders or duplicate artefacts
    assert not list(two.rglob(".*.*"))


def test_accelerate_configs_are_not_mistaken_for_recipes(capsys):
    cfg = str(ROOT / "recipes/accelerate/cpu_ddp.yaml")
    assert main(["validate", cfg, str(ROOT / "recipes/quickstart.yaml")]) == 0
    assert "skip" in capsys.readouterr().out
    assert main(["run", cfg]) == 2
    assert "accelerate config, not a recipe" in capsys.readouterr().err
