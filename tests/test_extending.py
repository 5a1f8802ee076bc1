"""Extending w2s as the README says: a new transfer method is one module plus registering it, a new stage
one module plus one line in `PLAN`. The test does exactly that to a copy of the package and runs it in a
fresh interpreter: the recipe schema, `w2s keys`, the run, its cache keys and the report pick both up
without any other edit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import pipeline

FLIP = '''"""flip: the weak labels with their classes swapped, mixed in by `mix` (a toy method for a test)."""

from dataclasses import dataclass, field

from pipeline.config.schema import MethodConfig
from pipeline.methods.base import LabelSet


@dataclass
class Config(MethodConfig):
    name: str = "flip"
    mix: float = field(default=1.0, metadata={"help": "weight of the swapped labels"})


def build_labels(cfg, ctx) -> LabelSet:
    w = ctx.weak_labels.astype("float32")
    return LabelSet(targets=(1 - cfg.mix) * w + cfg.mix * w[:, ::-1], diagnostics={"mix": cfg.mix})
'''

AGREEMENT = '''"""agreement: the share of test examples on which each method's student agrees with the weak model."""

from pipeline import rundir, tasks
from pipeline.stages.base import Stage, once


def run(job):
    r, task = job.recipe, tasks.of(job.recipe)
    _, weak = task.read_predictions(job.run.stage_dir("weak", 0) / rundir.predictions_file("test"))
    out = {}
    for m in r.methods:
        _, p = task.read_predictions(job.run.stage_dir("transfer", 0, m.key) / rundir.predictions_file("test"))
        out[m.key] = float(((p > 0.5) == (weak > 0.5)).mean())
    return {"agreement": out, "summary": ", ".join(f"{k} {v:.2f}" for k, v in out.items())}


STAGE = Stage(name="agreement", inputs=("weak", "transfer"), units=once, key=lambda r, u: [],
              folder=lambda run, unit: run.stage_dir("agreement"), run=run)
'''


def _copy_with_extensions(dest: Path) -> Path:
    src = Path(pipeline.__file__).resolve().parent
    pkg = dest / "pipeline"
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "methods" / "flip.py").write_text(FLIP)
    (pkg / "stages" / "agreement.py").write_text(AGREEMENT)
    with open(pkg / "methods" / "__init__.py", "a") as f:  # registering the method
        f.write("from pipeline.methods import flip  # noqa: E402\nMETHODS['flip'] = flip\n")
    with open(pkg / "stages" / "__init__.py", "a") as f:  # the one PLAN line (before the report)
        f.write("from pipeline.stages import agreement  # noqa: E402\nPLAN.insert(-1, agreement.STAGE)\n")
    return dest


def _w2s(root: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_new_method_and_a_new_stage_need_no_other_edit(tmp_path, tiny_recipe):
    import datasets
    import yaml

    root = _copy_with_extensions(tmp_path / "copy")
    recipe = yaml.safe_load(tiny_recipe.read_text())
    recipe["methods"] = ["naive", {"name": "flip", "mix": 1.0}]
    path = tmp_path / "ext.yaml"
    path.write_text(yaml.safe_dump(recipe))

    keys = _w2s(root, "keys")
    assert keys.returncode == 0 and "weight of the swapped labels" in keys.stdout, keys.stderr[-2000:]
    bad = _w2s(root, "validate", str(path), "methods[1].mixx=0.5")
    assert bad.returncode == 2 and "mixx" in bad.stderr and "did you mean 'mix'" in bad.stderr, bad.stderr

    first = _w2s(root, "run", str(path), "--no-progress")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    run = Path(recipe["output_dir"]) / recipe["name"]
    weak = datasets.load_from_disk(str(run / "seed0" / "weak" / "labels"))["soft_label"]
    flip = datasets.load_from_disk(str(run / "seed0" / "transfer" / "flip" / "labels"))["soft_label"]
    assert np.allclose(np.asarray(flip), 1 - np.asarray(weak), atol=1e-6)
    results = json.loads((run / "results.json").read_text())
    assert results["methods"]["flip"]["diagnostics"] == {"mix": 1.0}
    agreement = json.loads((run / "agreement" / "metrics.json").read_text())["agreement"]
    assert set(agreement) == {"naive", "flip"} and agreement["naive"] > agreement["flip"]
    assert "agreement" in (run / "report.md").read_text()

    again = _w2s(root, "run", str(path), "--no-progress")  # every stage reused, the new one included
    assert again.returncode == 0 and "[agreement] cached" in again.stdout + again.stderr, again.stdout[-2000:]
    forced = _w2s(root, "run", str(path), "--no-progress", "--force-stage", "agreement")  # known by name
    assert forced.returncode == 0 and "[agreement] cached" not in forced.stdout + forced.stderr
