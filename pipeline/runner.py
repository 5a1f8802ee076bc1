"""Run orchestration: run directory, stage order, cache keys, atomic writes, resume.

A stage is done when `<stage dir>/metrics.json` exists with the stage's current cache key; it is
written last, by atomic rename, so a crash never leaves a stage looking finished. The key hashes the
stage's own config, its inputs' keys and the package version, so editing the strong model reruns the
ceiling and transfers but reuses the data split and the weak labels.
"""

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

import pipeline
from pipeline import data as data_stage
from pipeline import models, stages
from pipeline.config import Recipe, to_dict
from pipeline.errors import UserError

STAGES = ("data", "weak", "ceiling", "transfer", "evaluate", "theory", "report")


def cache_key(*parts) -> str:
    blob = json.dumps([pipeline.__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _asdict(x):
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def preflight(recipe: Recipe) -> None:
    """Every check that can fail on user input, before anything is written."""
    if recipe.data.name is None and recipe.data.path is None:
        raise UserError("this recipe has no data: set data.name (a shipped dataset, `w2s data`) or data.path",
                        "a recipe with only a `theory:` block runs with `w2s theory RECIPE`")
    texts, labels, _ = data_stage.load_examples(recipe.data)
    data_stage.balanced_split(labels, data_stage.split_sizes(recipe.data), recipe.data.seed)
    problems = [f"{role}.model: {p}" for role in ("weak", "strong")
                if (p := models.check_spec(getattr(recipe, role).model))]
    for i, m in enumerate(recipe.methods):
        from pipeline.methods import METHODS

        check = getattr(METHODS[m.name], "preflight", None)
        if check and (p := check(m, recipe)):
            problems.append(f"methods[{i}] ({m.key}): {p}")
    if problems:
        raise UserError("\n  - ".join(["cannot run this recipe:", *problems]))
    out = Path(recipe.output_dir) / recipe.name
    base = _nearest_existing(out)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"output directory {out} cannot be written ({base} is not a writable folder)",
                        "set output_dir to a folder you can write to, e.g. output_dir=runs")


def environment(accelerator) -> dict:
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
    return {"w2s": pipeline.__version__, "git_commit": git, "git_dirty": dirty, "python": sys.version.split()[0],
            "platform": platform.platform(), "versions": versions, "device": str(accelerator.device),
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}


class Context:
    """What stages get: the recipe, run directory, accelerator, and cached access to splits and features."""

    def __init__(self, recipe: Recipe, run_dir: Path, accelerator, seed: int, roots: dict | None = None):
        self.recipe, self.run_dir, self.accelerator, self.seed = recipe, run_dir, accelerator, seed
        # where shared stages live: a sweep points data, features, weak and ceiling at folders shared by pairs
        self.roots = roots or {}
        self._splits, self._columns, self._features = {}, {}, {}
        self.data_key = None

    @property
    def data_dir(self) -> Path:
        root = self.roots.get("data", self.run_dir) / "data"
        return root / f"seed{self.seed}" if self.recipe.data.vary_split else root

    @property
    def split_seed(self) -> int:
        return self.recipe.data.seed + (self.seed if self.recipe.data.vary_split else 0)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def seed_everything(self) -> None:
        from accelerate.utils import set_seed

        set_seed(self.seed)

    def stage_dir(self, stage: str, sub: str | None = None, create: bool = True) -> Path:
        if stage == "data":
            d = self.data_dir
        elif stage in ("evaluate", "theory"):
            d = self.run_dir / stage
        else:
            d = self.roots.get(stage, self.run_dir) / f"seed{self.seed}" / stage
        if sub:
            d = d / sub
        if create and self.is_main:
            d.mkdir(parents=True, exist_ok=True)
        return d

    # --- atomic writes (main process only) ---
    def write_atomic(self, target: Path, write: Callable[[Path], None]) -> None:
        """Call write(tmp) on a temporary sibling path, then rename it onto target (file or folder)."""
        if not self.is_main:
            return
        atomic_write(target, write)

    def write_text(self, target: Path, text: str) -> None:
        self.write_atomic(target, lambda p: p.write_text(text))

    def save_dataset(self, ds, target: Path) -> None:
        self.write_atomic(target, lambda p: ds.save_to_disk(str(p)))

    # --- cached inputs ---
    def split(self, name: str):
        if name not in self._splits:
            self._splits[name] = data_stage.load_split(self.data_dir, name)
        return self._splits[name]

    def _column(self, name: str, column: str) -> list:
        if (name, column) not in self._columns:
            self._columns[name, column] = list(self.split(name)[column])
        return self._columns[name, column]

    def texts(self, name: str) -> list[str]:
        return self._column(name, "text")

    def labels(self, name: str) -> np.ndarray:
        return np.asarray(self._column(name, "label"), dtype=np.int64)

    def ids(self, name: str) -> list[int]:
        return [int(i) for i in self._column(name, "id")]

    def weak_soft_labels(self) -> np.ndarray:
        import datasets

        ds = datasets.load_from_disk(str(self.stage_dir("weak", create=False) / "labels"))
        p = np.asarray(list(ds["soft_label"]), dtype=np.float32)
        return np.stack([1 - p, p], axis=1)

    def weak_train_probs(self) -> np.ndarray:
        """The weak model's (in-sample) P(class) on its own training split A, [n, 2]."""
        return self._weak_probs("predictions_train_weak.jsonl")

    def weak_test_probs(self) -> np.ndarray:
        """The weak model's P(class) on the test split, [n, 2] (its predictions; no gold involved)."""
        return self._weak_probs("predictions.jsonl")

    def _weak_probs(self, name: str) -> np.ndarray:
        from pipeline.stages import read_predictions

        _, p = read_predictions(self.stage_dir("weak", create=False) / name)
        return np.stack([1 - p, p], axis=1)

    def features(self, role_cfg, splits: list[str]) -> dict[str, np.ndarray]:
        """Pooled frozen features of `role_cfg.model` per split: computed once per run, cached on disk."""
        from safetensors.numpy import load_file, save_file

        from pipeline.predict import pooled_features

        key = cache_key(role_cfg.model, role_cfg.head.pooling, self.recipe.data.max_length, self.data_key)
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in role_cfg.model)[-40:]
        folder = self.roots.get("features", self.run_dir) / "features" / f"{slug}-{key}"
        out, missing = {}, []
        for s in dict.fromkeys(splits):
            if (folder, s) in self._features:
                out[s] = self._features[folder, s]
            elif (folder / f"{s}.safetensors").exists():
                out[s] = self._features[folder, s] = load_file(str(folder / f"{s}.safetensors"))["features"]
            else:
                missing.append(s)
        if missing:
            path = models.resolve(role_cfg.model)
            tokenizer = models.load_tokenizer(path)
            backbone = models.load_backbone(path, role_cfg)
            for s in missing:
                f = pooled_features(backbone, tokenizer, self.texts(s), self.recipe.data.max_length,
                                    role_cfg.head.pooling, role_cfg.train.eval_batch_size, self.accelerator,
                                    desc=f"features {role_cfg.model} {s}")
                if self.is_main:
                    folder.mkdir(parents=True, exist_ok=True)
                self.write_atomic(folder / f"{s}.safetensors", lambda p, f=f: save_file({"features": f}, str(p)))
                out[s] = self._features[folder, s] = f
            del backbone
        return out


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        write(tmp)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(target: Path, obj) -> None:
    atomic_write(target, lambda p: p.write_text(json.dumps(obj, indent=2, default=_asdict) + "\n"))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


class Runner:
    def __init__(self, recipe: Recipe, accelerator=None, force: bool = False, force_stages=(), progress=True,
                 log=None, run_dir: Path | None = None, roots: dict | None = None):
        if accelerator is None:
            from pipeline.distributed import make_accelerator

            accelerator = make_accelerator(recipe, Path(recipe.output_dir) / recipe.name)
        self.recipe, self.accelerator, self.force = recipe, accelerator, force
        self.force_stages = set(force_stages)
        self.progress = progress
        self.run_dir = Path(run_dir) if run_dir is not None else Path(recipe.output_dir) / recipe.name
        self.roots = roots or {}
        self.executed: list[str] = []  # stage folders this invocation computed (not cached)
        if log is None:
            from pipeline.distributed import run_logger

            log = run_logger()
        self.log = log if accelerator.is_main_process else (lambda *a, **k: None)
        self.timings: dict[str, dict] = {}

    def _stage(self, name: str, label: str, folder: Path, key: str, fn: Callable[[], dict]) -> dict:
        marker = folder / "metrics.json"
        forced = self.force or name in self.force_stages
        if not forced and marker.exists():
            done = read_json(marker)
            if done.get("cache_key") == key:
                self.log(f"[{label}] cached ({done.get('summary', 'done')})")
                self.timings[label] = {"wall_time_s": done.get("wall_time_s"), "cached": True, "cache_key": key}
                return done
        if self.accelerator.is_main_process and folder.exists():
            shutil.rmtree(folder)  # a stale or half-finished attempt: start clean
        self.accelerator.wait_for_everyone()
        start = time.perf_counter()
        result = fn()
        result = {**result, "cache_key": key, "wall_time_s": round(time.perf_counter() - start, 2)}
        self.executed.append(str(folder))
        if self.accelerator.is_main_process:
            write_json(marker, result)
        self.accelerator.wait_for_everyone()
        self.log(f"[{label}] {result.get('summary', 'done')} ({result['wall_time_s']:.1f} s)")
        self.timings[label] = {"wall_time_s": result["wall_time_s"], "cached": False, "cache_key": key}
        return result

    def run(self, preflight_checks: bool = True, report_stage: bool = True) -> Path:
        from pipeline import report

        r = self.recipe
        if r.sweep.enabled:
            from pipeline.sweep import run_sweep

            return run_sweep(self)
        if preflight_checks:
            preflight(r)
        acc = self.accelerator
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / "config.yaml",
                         lambda p: p.write_text(yaml.safe_dump(to_dict(r), sort_keys=False)))
            write_json(self.run_dir / "env.json", environment(acc))
        acc.wait_for_everyone()
        from pipeline.distributed import start_trackers

        start_trackers(acc, r)
        cfg = to_dict(r)
        # what changes numbers without being a model or method setting: precision
        runtime = [r.runtime.mixed_precision or acc.mixed_precision]
        seeds = r.seed_list
        prefix = (lambda seed, label: f"seed{seed}/{label}") if len(seeds) > 1 else (lambda seed, label: label)
        base_data_key = cache_key("data", cfg["data"], data_stage.file_fingerprint(r.data))
        contexts, keys = {}, []
        for seed in seeds:
            ctx = contexts[seed] = Context(r, self.run_dir, acc, seed, self.roots)
            data_key = cache_key(base_data_key, ctx.split_seed) if r.data.vary_split else base_data_key
            ctx.data_key = data_key
            if r.data.vary_split or seed == seeds[0]:
                self._stage("data", prefix(seed, "data") if r.data.vary_split else "data", ctx.data_dir, data_key,
                            lambda ctx=ctx: data_stage.run(r, ctx))
            weak_key = cache_key("weak", cfg["weak"], data_key, seed, runtime)
            self._stage("weak", prefix(seed, "weak"), ctx.stage_dir("weak"), weak_key,
                        lambda ctx=ctx: stages.weak(r, ctx))
            ceil_key = cache_key("ceiling", cfg["strong"], data_key, seed, runtime)
            self._stage("ceiling", prefix(seed, "ceiling"), ctx.stage_dir("ceiling"), ceil_key,
                        lambda ctx=ctx: stages.ceiling(r, ctx))
            keys += [weak_key, ceil_key]
            for m in r.methods:
                if m.seeds is not None and seed not in m.seeds:
                    continue
                k = cache_key("transfer", _asdict(m), cfg["strong"], weak_key, seed, runtime)
                keys.append(k)
                self._stage("transfer", prefix(seed, f"transfer/{m.key}"), ctx.stage_dir("transfer", m.key), k,
                            lambda m=m, ctx=ctx: stages.transfer(m, r, ctx))
        eval_key = cache_key("evaluate", cfg["evaluate"], keys, [(m.key, m.seeds) for m in r.methods])
        self._stage("evaluate", "evaluate", self.run_dir / "evaluate", eval_key,
                    lambda: stages.evaluate(r, contexts))
        if r.theory.enabled:
            self.run_theory()
        if report_stage and acc.is_main_process:
            results = report.collect(self.run_dir, r, self.timings, self.roots)
            report.render(results, self.run_dir)
            self.log(f"[report] {self.run_dir / 'report.md'}")
        acc.wait_for_everyone()
        if r.runtime.trackers:
            acc.end_training()
        return self.run_dir

    def run_theory(self) -> dict:
        """The theory stage (also `w2s theory`): cached like every stage, by its own config alone."""
        from pipeline import theory

        folder = self.run_dir / "theory"

        def fn():
            if not self.accelerator.is_main_process:  # seconds of CPU work: one process does it
                return {}
            m = theory.run(self.recipe.theory, folder, progress=self.progress)
            held = [p for p in m.get("predictions", []) if p.get("held") is not None]
            m["summary"] = (f"{sum(p['held'] for p in held)}/{len(held)} theory predictions held"
                            if held else "done")
            return m

        key = cache_key("theory", _asdict(self.recipe.theory))
        return self._stage("theory", "theory", folder, key, fn)
