"""scripts/flops.py: the matmul FLOPs of each stage unit of a real run, counted by torch's FlopCounterMode."""

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("flops_script", REPO / "scripts" / "flops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flops_counts_every_unit_and_at_least_the_weights_matmuls(tiny_recipe, tiny_models):
    import datasets
    import torch
    from transformers import AutoModel, AutoTokenizer

    from pipeline.config.loading import load_recipe
    from pipeline.runner import Runner

    raw = yaml.safe_load(tiny_recipe.read_text())
    raw["methods"] = [{"name": "naive"}]
    tiny_recipe.write_text(yaml.safe_dump(raw))
    run_dir = Runner(load_recipe(str(tiny_recipe), []), progress=False).run()  # a normal run, for its splits
    before = {p.name for p in run_dir.parent.iterdir()}
    real = Runner.run_stage
    flops = _script().count(str(tiny_recipe), [])
    assert Runner.run_stage is real  # patched only while counting
    assert {p.name for p in run_dir.parent.iterdir()} == before  # the counted run went to a temporary folder
    assert set(flops) == {"data", "weak", "ceiling", "transfer/naive", "evaluate", "report"}
    # The ceiling in head mode: features of B and test, at least 2 FLOPs per weight-matrix entry per real
    # token (padding and attention add more), plus its heads' Newton solves.
    model = AutoModel.from_pretrained(tiny_models["decoder"])
    tok = AutoTokenizer.from_pretrained(tiny_models["decoder"])
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    n = sum(p.numel() for p in model.parameters() if p.ndim == 2 and id(p) not in embeddings)
    texts = [t for split in ("transfer", "test")
             for t in datasets.load_from_disk(str(run_dir / "data" / split))["text"]]
    tokens = sum(min(len(ids), raw["data"]["max_length"]) for ids in tok(texts)["input_ids"])
    assert flops["ceiling"] >= 2 * n * tokens
    assert flops["weak"] > 0 and flops["data"] == 0


def test_flops_bad_input_is_one_message_and_exit_2(tmp_path):
    import subprocess
    import sys

    for args, says in ((["recipes/nope.yaml"], "recipe file not found"),
                       (["recipes/quickstart.yaml", "--walls", str(tmp_path)], "no results.json there")):
        r = subprocess.run([sys.executable, "scripts/flops.py", *args], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
