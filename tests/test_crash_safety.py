"""Crash safety: one run SIGKILLed in each stage in turn (data, weak training, ceiling, a transfer method,
evaluate, report), each time re-run: finished stages are never touched again, the killed one starts
clean (or from its mid-training checkpoint), and the final results equal an uninterrupted run's."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "crash_worker.py"
ARGS = ["--no-progress", "methods=[naive, graph_smooth]", "weak.train.checkpoint_every=4"]
# (where the process dies, the stages that must have finished before, and so be left untouched)
KILLS = [
    ("write:*/data/transfer", []),
    ("backward:11", ["data"]),  # weak training, step 11 of 48: resumes from its checkpoint at step 8
    ("write:*/seed0/ceiling/predictions.jsonl", ["data", "seed0/weak"]),
    ("write:*/seed0/transfer/graph_smooth/*", ["data", "seed0/weak", "seed0/ceiling", "seed0/transfer/naive"]),
    ("write:*/evaluate/metrics.json", ["data", "seed0/weak", "seed0/ceiling", "seed0/transfer/naive",
                                       "seed0/transfer/graph_smooth"]),
    ("write:*/report.md", ["data", "seed0/weak", "seed0/ceiling", "seed0/transfer/naive",
                           "seed0/transfer/graph_smooth", "evaluate"]),
]
# what differs between two runs of one recipe: wall times, the name, the process environment (threads)
VOLATILE = {"wall_time_s", "stages", "name", "stages_executed", "resumed_from_step", "timings", "env"}


def _stable(x):
    """results.json without what differs between two runs of the same recipe (wall times, the name)."""
    if isinstance(x, dict):
        return {k: _stable(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


def _marker(run: Path, stage: str) -> tuple[int, bytes]:
    path = run / stage / "metrics.json"
    return path.stat().st_mtime_ns, path.read_bytes()


def test_a_run_killed_in_every_stage_in_turn_ends_with_the_uninterrupted_results(tiny_recipe, capsys):
    root = Path(yaml.safe_load(tiny_recipe.read_text())["output_dir"])
    assert main(["run", str(tiny_recipe), *ARGS, "name=clean"]) == 0
    clean = json.loads((root / "clean" / "results.json").read_text())
    run = root / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before: dict = {}
    for point, finished in KILLS:
        proc = subprocess.run([sys.executable, str(WORKER), point, "run", str(tiny_recipe), *ARGS, "name=killed"],
                              capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-3000:])
        for stage in finished:  # finished before this kill (in this attempt or an earlier one): untouched
            assert (run / stage / "metrics.json").exists(), (point, stage)
            if stage in before:
                assert _marker(run, stage) == before[stage], (point, stage)
            before[stage] = _marker(run, stage)
        assert not (run / "results.json").exists() or point == "write:*/report.md"
        if point.startswith("backward"):
            position = json.loads((run / "seed0/weak/checkpoints/state/position.json").read_text())
            assert position["step"] == 8
    assert main(["run", str(tiny_recipe), *ARGS, "name=killed"]) == 0
    for stage, marker in before.items():
        assert _marker(run, stage) == marker, stage
    assert json.loads((run / "seed0/weak/metrics.json").read_text())["resumed_from_step"] == 8
    assert _stable(json.loads((run / "results.json").read_text())) == _stable(clean)
    assert not list(run.glob("**/.*.tmp")) and not list(run.glob("**/checkpoints"))
    assert not (run / ".w2s-lock").exists()
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in (root / "clean").iterdir()), names
