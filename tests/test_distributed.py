"""Scale-out: the shipped accelerate configs parse, a 3-process CPU run (gloo) through
`accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml` gives the 1-process run's results, and
torch FSDP on 2 CPU ranks trains every shard."""

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


def _dropout_free_copy(encoder: str, out: Path) -> str:
    """The tiny BERT without dropout: then N ranks and 1 process differ only in reduction order."""
    import shutil

    from transformers import AutoConfig, BertModel

    cfg = AutoConfig.from_pretrained(encoder)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    BertModel.from_pretrained(encoder, config=cfg).save_pretrained(out)
    for f in Path(encoder).iterdir():
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return str(out)


def test_accelerate_configs_are_not_mistaken_for_recipes(capsys):
    cfg = str(ROOT / "recipes/accelerate/cpu_ddp.yaml")
    assert main(["validate", cfg, str(ROOT / "recipes/quickstart.yaml")]) == 0
    assert "skip" in capsys.readouterr().out
    assert main(["run", cfg]) == 2
    assert "accelerate config, not a recipe" in capsys.readouterr().err


@pytest.mark.parametrize("n", [1, 2, 5, 9, 61, 73, 450, 500])
@pytest.mark.parametrize("processes", [1, 2, 3, 4, 6, 8])
def test_padded_shards_gather_back_into_input_order(n, processes):
    import numpy as np

    from pipeline.predict import shard_rows, unpad_gathered

    shards = [shard_rows(n, processes, r) for r in range(processes)]
    padded = shards[0][1]
    assert all(p == padded for _, p in shards)
    assert [i for rows, _ in shards for i in rows] == list(range(n))  # contiguous, disjoint, complete
    assert max(len(r) for r, _ in shards) - min(len(r) for r, _ in shards) <= 1
    # what each rank computes (its rows, then repeats), concatenated in rank order as `gather` does
    gathered = np.concatenate([list(rows) + [rows[-1] if len(rows) else 0] * (padded - len(rows))
                               for rows, _ in shards])
    assert unpad_gathered(gathered, n, processes).tolist() == list(range(n))


def _launch(recipe: Path, processes: int, output_dir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes/accelerate/cpu_ddp.yaml"), "--num_processes", str(processes),
           "--main_process_port", str(_free_port()), "-m", "pipeline", "run", str(recipe), "--no-progress",
           f"output_dir={output_dir}"]
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def uneven_run(tmp_path_factory, tiny_models):
    """One-process run of a recipe whose predicted splits leave uneven shards on 3 and 4 processes
    (n_transfer 61, n_test 73: n % P is 1 for P = 3 and 4), with a full fine-tune (dropout-free weak
    encoder), head mode (strong decoder features), graph_smooth, selective and refine (the decoder relabels B)."""
    from tests.conftest import make_rows

    tmp = tmp_path_factory.mktemp("uneven")
    encoder = _dropout_free_copy(tiny_models["encoder"], tmp / "bert-no-dropout")
    data = tmp / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(260, seed=3)))
    recipe = tmp / "uneven.yaml"
    # batch 12 divides over 3 and 4 processes and divides A (72) and selective's weak folds (48): training
    # takes the same global batches on any process count; every predicted split is sharded unevenly
    recipe.write_text(f"""
name: uneven
output_dir: {tmp / 'one'}
data: {{path: {data}, text_field: review, label_field: sentiment, n_train_weak: 72, n_transfer: 61,
        n_test: 73, max_length: 16}}
weak:
  model: {encoder}
  mode: full
  train: {{epochs: 2, lr: 1.0e-2, batch_size: 12, eval_batch_size: 5}}
strong:
  model: {tiny_models['decoder']}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}
  train: {{eval_batch_size: 7}}
methods: [naive, {{name: naive, id: naive_hard, hard: true}}, {{name: graph_smooth, knn: 5}},
          {{name: selective, folds: 3, self_labels: probe}},
          {{name: refine, shots: 2, block_size: 16, curve_shots: [0, 2], curve_n: 20, prompt_only_n: 20,
            prompt: "Review: {{text}} Sentiment:", verbalizers: [bad, good]}}]
evaluate: {{bootstrap: 100}}
theory: {{enabled: false}}
""")
    assert main(["run", str(recipe), "--no-progress"]) == 0
    return recipe, tmp / "one" / "uneven"


def _close(a, b, what, tol=1e-5):
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, what
    assert np.abs(a - b).max() < tol, f"{what}: max difference {np.abs(a - b).max():.2e}"


@pytest.mark.parametrize("processes", [3, 4])
def test_uneven_processes_reproduce_one_process(uneven_run, tmp_path, processes):
    """`accelerate launch` with 3 and 4 gloo ranks: every predicted split is sharded unevenly (n % P = 1, the
    case the old padding got wrong; `test_padded_shards_gather_back_into_input_order` covers 1-8 processes),
    training takes the same global batches, and every output matches the 1-process run."""
    import datasets
    from safetensors.numpy import load_file

    recipe, one = uneven_run
    proc = _launch(recipe, processes, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    many = tmp_path / "uneven"
    assert json.loads((many / "env.json").read_text())["num_processes"] == processes
    assert proc.stdout.count("[evaluate]") == 1  # only rank 0 logs
    assert not list(many.rglob(".*.*"))  # only rank 0 wrote: no stray temporary folders
    assert (json.loads((one / "data/metrics.json").read_text())["splits"]
            == json.loads((many / "data/metrics.json").read_text())["splits"])
    m1, m2 = (json.loads((d / "seed0/weak/metrics.json").read_text()) for d in (one, many))
    assert m1["train_steps"] == m2["train_steps"] == 2 * 6  # 72 / 12 = 6 global batches per epoch either way
    stages = ["seed0/weak", "seed0/ceiling", "seed0/transfer/naive", "seed0/transfer/naive_hard",
              "seed0/transfer/graph_smooth", "seed0/transfer/selective", "seed0/transfer/refine"]
    for stage in stages:
        a, b = _rows(one / stage / "predictions.jsonl"), _rows(many / stage / "predictions.jsonl")
        assert [(r["id"], r["label"]) for r in a] == [(r["id"], r["label"]) for r in b] and len(b) == 73, stage
        _close([r["prob"] for r in a], [r["prob"] for r in b], f"{stage} test predictions")
    a, b = (_rows(d / "seed0/weak/predictions_train_weak.jsonl") for d in (one, many))
    _close([r["prob"] for r in a], [r["prob"] for r in b], "weak predictions on A")
    # weak labels on B and every method's training labels
    for stage in ["seed0/weak", *stages[2:]]:
        la, lb = (datasets.load_from_disk(str(d / stage / "labels")) for d in (one, many))
        assert la["id"] == lb["id"] and la["hard_label"] == lb["hard_label"], stage
        _close(la["soft_label"], lb["soft_label"], f"{stage} labels on B")
    # frozen features row by row (strong decoder on every split it was asked for)
    fa, fb = sorted((one / "features").rglob("*.safetensors")), sorted((many / "features").rglob("*.safetensors"))
    assert [p.relative_to(one) for p in fa] == [p.relative_to(many) for p in fb] and fa
    for pa, pb in zip(fa, fb):
        _close(load_file(str(pa))["features"], load_file(str(pb))["features"], f"features {pa.name}")
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, many))
    for key in ("weak", "ceiling"):
        assert r1[key]["accuracy"]["value"] == r2[key]["accuracy"]["value"]
    for key in ("naive", "naive_hard", "graph_smooth", "selective", "refine"):
        assert r1["methods"][key]["accuracy"]["value"] == r2["methods"][key]["accuracy"]["value"], key
    # refine's demonstration blocks were scored by different processes (4 blocks of B over 3 or 4 ranks), gathered
    d1, d2 = (r["methods"]["refine"]["diagnostics"] for r in (r1, r2))
    for key in ("refined_label_accuracy", "refined_label_accuracy_uncalibrated", "refinement_curve", "prompt_only_test",
                "demos_dropped_for_context"):
        assert d1[key] == d2[key], key


def test_fsdp_on_two_cpu_ranks_trains_every_shard_and_matches_one_process(tiny_models, tmp_path):
    """torch FSDP (v1, FULL_SHARD, per-layer units, use_orig_params) on 2 gloo ranks, with transformers'
    cpu_ram_efficient_loading leaving rank 1's head on meta: the optimizer from `prepare_with_optimizer`
    steps every rank's shard of every trainable parameter, decays by name on the flat 1-D shards, and ends
    where one process ends; a LoRA save gathers exactly the trainable parameters. (accelerate 1.15 refuses
    FSDP without an accelerator device, hence torch's FSDP directly: tests/fsdp_cpu_worker.py.)"""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(ROOT / "tests" / "fsdp_cpu_worker.py"), tiny_models["encoder"], "full,lora",
           str(tmp_path)]
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for mode in ("full", "lora"):
        r0, r1 = (json.loads((tmp_path / f"rank{r}_{mode}.json").read_text()) for r in (0, 1))
        assert not r0["meta_after_loading"] and any("classifier" in n for n in r1["meta_after_loading"])
        for r in (r0, r1):
            assert r["shard_changed"] and all(r["shard_changed"].values()), r["shard_changed"]
            assert r["optimizer_params_are_module_params"]
            assert r["decay_group_size"] > 0 and r["no_decay_group_size"] > 0
        # every trainable parameter has a non-empty shard on some rank, so all of it trained
        assert set(r0["empty_shards"]) & set(r1["empty_shards"]) == set()
        assert r0["params_max_diff_vs_one_process"] < 1e-5
        if mode == "lora":
            assert r0["saved_keys"] == r0["trainable_keys"] and all("lora_" in k or "modules_to_save" in k
                                                                   for k in r0["saved_keys"])
            assert r0["saved_max_diff_vs_one_process"] < 1e-5


def test_two_processes_answer_a_generation_run_as_one_does(tiny_models, tmp_path, capsys):
    """A generation run (answer-only SFT, batched greedy answers sharded over ranks, refinement and
    selective routing) on 2 gloo ranks writes the 1-process run's answers, labels and scores."""
    import datasets
    from test_generation import _generation_recipe

    recipe = _generation_recipe(tmp_path, tiny_models, """
  - name: naive
  - {name: refine, refinement_batch: 3, curve_shots: [2], curve_n: 9, prompt_only_n: 9}
  - {name: selective, shots: 2, weak_folds: 2, min_routed: 2}""")
    assert main(["run", str(recipe), "--no-progress", f"output_dir={tmp_path / 'one'}"]) == 0
    capsys.readouterr()
    proc = _launch(recipe, 2, tmp_path / "two")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, two = tmp_path / "one" / "gen", tmp_path / "two" / "gen"
    assert json.loads((two / "env.json").read_text())["num_processes"] == 2
    for stage in ("seed0/weak", "seed0/ceiling", "seed0/transfer/naive", "seed0/transfer/refine",
                  "seed0/transfer/selective"):
        assert _rows(one / stage / "predictions.jsonl") == _rows(two / stage / "predictions.jsonl"), stage
    for stage in ("seed0/weak", "seed0/transfer/refine", "seed0/transfer/selective"):
        a, b = (datasets.load_from_disk(str(d / stage / "labels")).to_dict() for d in (one, two))
        assert a == b, stage
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert r1["methods"]["refine"]["diagnostics"] == r2["methods"]["refine"]["diagnostics"]
    for key in ("naive", "refine", "selective"):
        assert r1["methods"][key]["accuracy"] == r2["methods"][key]["accuracy"], key
