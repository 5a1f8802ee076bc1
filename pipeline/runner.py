"""Run orchestration: execute the plan's stages, unit by unit, reusing finished ones.

A unit is done when its folder's `metrics.json` holds its current cache key; it is written last, by
atomic rename, so a crash never leaves a stage looking finished. The key hashes the part of the recipe
the stage declares, the unit (seed, method), the autocast precision for stages that run models, a
fingerprint of the code the unit runs, and the *output ids* of the input units it reads. A unit's
output id is its key, except after a forced run (`--force`, `--force-stage`), which gives it a fresh
one: everything downstream of a forced stage reruns, once.
"""

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

import pipeline
from pipeline import tasks
from pipeline.config.loading import to_dict
from pipeline.distributed import make_accelerator, run_logger, start_trackers
from pipeline.fingerprint import code_fingerprint
from pipeline.preflight import preflight
from pipeline.rundir import CHECKPOINTS, RUN_FORMAT, RunDir, atomic_write, cache_key, read_json, write_json
from pipeline.stages import PLAN, STAGES
from pipeline.stages.base import Job, label


def environment(accelerator) -> dict:
    """Versions, git commit, device and process count: env.json and the report's footer."""
    import importlib.metadata as md

    import torch

    versions = {}
    for dist in ("torch", "transformers", "datasets", "peft", "accelerate", "evaluate", "numpy", "scikit-learn"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    repo = Path(pipeline.__file__).resolve().parent.parent
    try:
        git = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()) if git else None
    except (OSError, subprocess.SubprocessError):
        git, dirty = None, None
    return {"w2s": pipeline.__version__, "run_format": RUN_FORMAT, "git_commit": git, "git_dirty": dirty,
            "python": sys.version.split()[0],
            "platform": platform.platform(), "versions": versions, "device": str(accelerator.device),
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}


def write_run_files(run_dir: Path, recipe, accelerator) -> None:
    """The resolved recipe (config.yaml) and the environment (env.json), main process only."""
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.yaml", lambda p: p.write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False)))
        write_json(run_dir / "env.json", environment(accelerator))
    accelerator.wait_for_everyone()


class Runner:
    """Runs one recipe's plan in one run directory (a sweep makes one Runner per pair, sharing `roots`)."""

    def __init__(self, recipe, accelerator=None, force: bool = False, force_stages=(), progress=True,
                 log=None, run_dir: Path | None = None, roots: dict | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else Path(recipe.output_dir) / recipe.name
        self.recipe = recipe
        self.accelerator = accelerator or make_accelerator(recipe, self.run_dir)
        self.force, self.force_stages, self.progress = force, set(force_stages), progress
        self.paths = RunDir(self.run_dir, recipe.data.vary_split, roots or {})
        self.executed: list[str] = []  # stage folders this invocation computed (not cached)
        log = log or run_logger()
        self.log = log if self.accelerator.is_main_process else (lambda *a, **k: None)
        self.timings: dict[str, dict] = {}
        self.keys: dict = {}  # (stage name, Unit) -> output id (what downstream keys hash)
        self._shared = ({}, {})  # SeedInputs per seed, features in memory: shared by this invocation's jobs

    def key(self, stage, unit) -> str:
        """The unit's cache key: its declared config, the unit, precision, its code, its inputs' output ids."""
        r = self.recipe
        parts = [stage.name, stage.key(r, unit), unit.seed, unit.method]
        if stage.runs_models:  # what changes numbers without being a model or method setting
            parts.append(r.runtime.mixed_precision or self.accelerator.mixed_precision)
        task = [tasks.TASKS[r.task]] if stage.task_code else []
        parts.append(code_fingerprint([stage.run.__module__, *task, *stage.code(r, unit)]))
        parts.append([k for (name, u), k in self.keys.items() if name in stage.inputs and unit.depends_on(u)])
        return cache_key(*parts)

    def _forced(self, stage) -> bool:
        return self.force or stage.name in self.force_stages

    def status(self, stage, unit) -> tuple[str, str, str, dict | None]:
        """(cache key, output id, state, finished metrics or None) of a unit given what is on disk: state is
        reuse, forced, new or changed (its key differs from the finished one's)."""
        folder, key = stage.folder(self.paths, unit), self.key(stage, unit)
        marker = folder / "metrics.json"
        done = read_json(marker) if stage.cached and marker.exists() else None
        if self._forced(stage):  # a new output id, the same on every rank: derived from the one it replaces
            return key, cache_key(key, "forced", (done or {}).get("output_id")), "forced", done
        if done is not None and done.get("cache_key") == key:
            return key, done.get("output_id", key), "reuse", done
        return key, key, "changed" if done is not None else "new", done

    def run_stage(self, stage, unit) -> dict:
        folder = stage.folder(self.paths, unit)
        key, output_id, state, done = self.status(stage, unit)
        self.keys[stage.name, unit] = output_id
        name = label(self.recipe, stage.name, unit)
        job = Job(self.recipe, self.paths, self.accelerator, unit, folder, self.keys, self.timings, self.progress,
                  *self._shared)
        if not stage.cached:
            result = stage.run(job)
            self.log(f"[{name}] {result.get('summary', 'done')}")
            return result
        marker = folder / "metrics.json"
        if state == "reuse":
            self.log(f"[{name}] cached ({done.get('summary', 'done')})")
            self.timings[name] = {"wall_time_s": done.get("wall_time_s"), "cached": True, "cache_key": key}
            return done
        if self.accelerator.is_main_process:
            self._clear(folder, key, state)  # a stale or half-finished attempt: start clean
        self.accelerator.wait_for_everyone()
        start = time.perf_counter()
        result = stage.run(job)
        result = {**result, "cache_key": key, "output_id": output_id,
                  "wall_time_s": round(time.perf_counter() - start, 2)}
        self.executed.append(str(folder))
        if self.accelerator.is_main_process:
            ckpt = folder / CHECKPOINTS
            if ckpt.is_dir() and [p.name for p in ckpt.iterdir()] == ["KEY"]:  # nothing saved (or deleted)
                shutil.rmtree(ckpt)
            write_json(marker, result)
        self.accelerator.wait_for_everyone()
        self.log(f"[{name}] {result.get('summary', 'done')} ({result['wall_time_s']:.1f} s)")
        self.timings[name] = {"wall_time_s": result["wall_time_s"], "cached": False, "cache_key": key,
                              **({"resumed_from_step": result["resumed_from_step"]}
                                 if "resumed_from_step" in result else {})}
        return result

    @staticmethod
    def _clear(folder: Path, key: str, state: str) -> None:
        """Empty a unit's folder for a new attempt, keeping the mid-training checkpoints of an interrupted
        attempt with the same cache key (not after --force: a forced unit starts from scratch); the folder
        then holds `checkpoints/KEY` naming the key they belong to."""
        ckpt = folder / CHECKPOINTS
        keep = state != "forced" and (ckpt / "KEY").exists() and (ckpt / "KEY").read_text() == key
        aside = folder.parent / f".{folder.name}-{CHECKPOINTS}"
        if keep:
            shutil.rmtree(aside, ignore_errors=True)
            ckpt.replace(aside)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if keep:
            aside.replace(ckpt)
        else:
            ckpt.mkdir()
            (ckpt / "KEY").write_text(key)

    def plan(self, stages=PLAN) -> list[tuple]:
        """(stage, unit, label, folder, cache key, state) of every unit the recipe enables, without running
        any: state is reuse (finished with this key), forced, new, changed, or `after <input>` when an input
        will run (its output id is then unknown, so this unit reruns as well)."""
        rows, pending = [], []  # (stage name, unit, label) of the units that will run
        for stage, unit in self._units(stages):
            key, output_id, state, _ = self.status(stage, unit)
            name = label(self.recipe, stage.name, unit)
            upstream = [lab for s, u, lab in pending if s in stage.inputs and unit.depends_on(u)]
            if upstream and state in ("reuse", "changed"):
                state = f"after {upstream[0]}"
            if state != "reuse" and stage.cached:
                output_id = cache_key(key, "pending")
                pending.append((stage.name, unit, name))
            self.keys[stage.name, unit] = output_id
            rows.append((stage, unit, name, stage.folder(self.paths, unit), key, state if stage.cached else "always"))
        return rows

    def _units(self, stages):
        """(stage, unit) of every unit of `stages` the recipe enables, in plan order."""
        for stage in stages:
            if stage.enabled(self.recipe):
                for unit in stage.units(self.recipe):
                    yield stage, unit

    def execute(self, stages) -> dict:
        """Run every unit of `stages` (in plan order) that the recipe enables; returns the last result."""
        result = {}
        for stage, unit in self._units(stages):
            result = self.run_stage(stage, unit)
        return result

    def run(self, preflight_checks: bool = True) -> Path:
        if preflight_checks:
            preflight(self.recipe, self.accelerator.num_processes)
        write_run_files(self.run_dir, self.recipe, self.accelerator)
        start_trackers(self.accelerator, self.recipe)
        self.execute(PLAN)
        self.accelerator.wait_for_everyone()
        if self.recipe.runtime.trackers:
            self.accelerator.end_training()
        return self.run_dir

    def run_theory(self) -> dict:
        """Only the theory stage (`w2s theory`, and a sweep's theory), cached like any stage."""
        return self.execute([STAGES["theory"]])
