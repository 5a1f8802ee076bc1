"""What a stage is, and what it gets when it runs.

A stage module defines `STAGE = Stage(...)`: its name, the stages whose outputs it reads (`inputs`),
its units (once per run, per seed, per seed and method), the part of the recipe that enters its cache
key, its folder, and `run(job) -> dict` (the stage's metrics.json). The runner computes each unit's
key from that part plus the keys of the input units it depends on, so editing the weak model reruns
weak, transfer and evaluate but not data or ceiling. Stages never call each other; they read their
inputs from the run directory through `SeedInputs`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pipeline import models, rundir, tasks
from pipeline.rundir import RunDir
from pipeline.tasks.base import Split


@dataclass(frozen=True)
class Unit:
    """One execution of a stage: for a training seed and/or a method (by key), or once per run (None)."""

    seed: Optional[int] = None
    method: Optional[str] = None

    def depends_on(self, other: "Unit") -> bool:
        """`other` (a unit of an input stage) feeds this unit: every coordinate both set agrees."""
        return all(a is None or b is None or a == b for a, b in ((self.seed, other.seed),
                                                                 (self.method, other.method)))


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    units: Callable[[object], list[Unit]]  # recipe -> units, in run order
    key: Callable[[object, Unit], list]  # (recipe, unit) -> the config that enters the cache key
    folder: Callable[[RunDir, Unit], Path]
    run: Callable[["Job"], dict]
    runs_models: bool = False  # autocast precision enters the key
    # (recipe, unit) -> modules whose code (with what they import) enters the key besides the stage's own
    # and the task's: a transfer adds its method's module
    code: Callable[[object, Unit], list[str]] = lambda recipe, unit: []
    task_code: bool = True  # the task module's code enters the key (the data stage reads only its loaders)
    cached: bool = True  # False: runs every time (the report)
    enabled: Callable[[object], bool] = lambda recipe: True


def method_of(recipe, unit: Unit):
    """The method config a unit runs (by its key)."""
    return next(m for m in recipe.methods if m.key == unit.method)


def per_seed(recipe) -> list[Unit]:
    return [Unit(seed=s) for s in recipe.seed_list]


def once(recipe) -> list[Unit]:
    return [Unit()]


def write_scored(task, folder: Path, inputs: "SeedInputs", probs: dict, splits: list[str]) -> None:
    """A model's predictions on each of `splits` (rundir.predictions_file names them)."""
    for s in splits:
        task.write_predictions(folder / rundir.predictions_file(s), inputs.ids(s), inputs.labels(s), probs[s])


def ood_accuracy(task, inputs: "SeedInputs", probs: dict) -> dict:
    """{"test_ood_accuracy": ...} when the recipe has a shifted test set, else {}."""
    if "test_ood" not in probs:
        return {}
    return {"test_ood_accuracy": task.accuracy(probs["test_ood"], inputs.labels("test_ood"))}


def label(recipe, stage: str, unit: Unit) -> str:
    """How logs and the report name a unit: `weak`, `seed1/weak`, `seed0/transfer/naive`."""
    name = f"{stage}/{unit.method}" if unit.method else stage
    return f"seed{unit.seed}/{name}" if unit.seed is not None and len(recipe.seed_list) > 1 else name


@dataclass
class Job:
    """One unit of a stage being run: the recipe, run directory, accelerator, the unit and its folder."""

    recipe: object
    run: RunDir
    accelerator: object
    unit: Unit
    folder: Path
    keys: dict  # (stage name, Unit) -> cache key of every unit planned so far
    timings: dict  # label -> wall time and cache state of every unit so far (the report prints them)
    progress: bool = True
    seed_inputs: dict = field(default_factory=dict)  # seed -> SeedInputs, shared by one invocation's jobs
    feature_cache: dict = field(default_factory=dict)  # frozen features in memory, likewise shared

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def method(self):
        return method_of(self.recipe, self.unit)

    def inputs(self, seed: Optional[int] = None) -> "SeedInputs":
        seed = self.unit.seed if seed is None else seed
        if seed not in self.seed_inputs:
            data_key = next(k for (s, u), k in self.keys.items() if s == "data" and Unit(seed=seed).depends_on(u))
            self.seed_inputs[seed] = SeedInputs(self.recipe, self.run, self.accelerator, seed, data_key,
                                                self.feature_cache)
        return self.seed_inputs[seed]


class SeedInputs:
    """The inputs of one training seed, read from the run directory and cached: splits, the weak model's
    outputs, frozen features (computed once per model and split, stored under features/)."""

    def __init__(self, recipe, run: RunDir, accelerator, seed: int, data_key: str, feature_cache: dict):
        self.recipe, self.run, self.accelerator, self.seed, self.data_key = recipe, run, accelerator, seed, data_key
        self._splits, self._columns, self._features = {}, {}, feature_cache

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def seed_everything(self) -> None:
        from accelerate.utils import set_seed

        set_seed(self.seed)

    def write_atomic(self, target: Path, write: Callable[[Path], None]) -> None:
        """rundir.atomic_write on the main process only."""
        if self.is_main:
            rundir.atomic_write(target, write)

    # --- splits
    def split(self, name: str):
        if name not in self._splits:
            import datasets

            self._splits[name] = datasets.load_from_disk(str(self.run.data_dir(self.seed) / name))
        return self._splits[name]

    def _column(self, name: str, column: str) -> list:
        if (name, column) not in self._columns:
            self._columns[name, column] = list(self.split(name)[column])
        return self._columns[name, column]

    def has(self, name: str) -> bool:
        return (self.run.data_dir(self.seed) / name).exists()

    def scored(self) -> list[str]:
        """The splits every model is scored on: test, and the shifted test set when the recipe has one."""
        return ["test"] + (["test_ood"] if self.recipe.data.test_ood is not None else [])

    def texts(self, name: str) -> list:
        """A split's inputs: texts, or (A, B) text pairs for a preference task."""
        if "text_b" not in self.split(name).column_names:
            return self._column(name, "text")
        if (name, "pairs") not in self._columns:
            self._columns[name, "pairs"] = list(zip(self._column(name, "text"), self._column(name, "text_b")))
        return self._columns[name, "pairs"]

    def labels(self, name: str) -> np.ndarray:
        """Gold labels: 0/1 (int64), or a generation task's reference answers (an object array of strings)."""
        column = self._column(name, "label")
        if column and isinstance(column[0], str):
            return np.asarray(column, dtype=object)
        return np.asarray(column, dtype=np.int64)

    def ids(self, name: str) -> list[int]:
        return [int(i) for i in self._column(name, "id")]

    def examples(self, name: str) -> Split:
        return Split(self.texts(name), self.labels(name), self.ids(name))

    # --- the weak model's outputs
    def weak_dir(self) -> Path:
        return self.run.stage_dir("weak", self.seed)

    def weak_soft_labels(self) -> np.ndarray:
        """The weak model's labels of B: P(class) [n, 2] float32, or its answers (generation)."""
        return tasks.of(self.recipe).read_labels(self.weak_dir() / "labels")

    def weak_train_probs(self) -> np.ndarray:
        """The weak model's (in-sample) outputs on its own training split A (P(class) [n, 2], or answers)."""
        return tasks.of(self.recipe).read_outputs(self.weak_dir() / "predictions_train_weak.jsonl")

    def weak_test_probs(self) -> np.ndarray:
        """The weak model's outputs on the test split (its predictions; no gold involved)."""
        return tasks.of(self.recipe).read_outputs(self.weak_dir() / "predictions.jsonl")

    def note_truncation(self, tokenizer, model: str, splits) -> dict[str, int]:
        """Count, once per model and split, the inputs longer than data.max_length (they are cut), and warn
        about any on the main process. Returns {split: count} for the splits with cut inputs."""
        import sys

        from pipeline.predict import count_truncated

        limit, out = self.recipe.data.max_length, {}
        for s in dict.fromkeys(splits):
            key = ("truncated", model, limit, self.data_key, s)
            if key not in self._features:
                texts = self.texts(s)
                n = self._features[key] = count_truncated(tokenizer, texts, limit)
                if n and self.is_main:
                    side = "their prompts cut from the left" if texts and not isinstance(texts[0], str) else \
                        f"cut to their first {limit} tokens"
                    print(f"warning: {n} of {len(texts)} inputs of split {s} are longer than data.max_length = "
                          f"{limit} tokens for {model}'s tokenizer and are {side}; raise data.max_length to keep "
                          "them whole", file=sys.stderr, flush=True)
            if self._features[key]:
                out[s] = self._features[key]
        return out

    # --- frozen features
    def features(self, role_cfg, splits: list[str]) -> dict[str, np.ndarray]:
        """Pooled frozen features of `role_cfg.model` per split: computed once per run, cached on disk."""
        from safetensors.numpy import load_file, save_file

        from pipeline.predict import pooled_features  # torch: only where a model runs

        key = rundir.cache_key(role_cfg.model, role_cfg.head.pooling, self.recipe.data.max_length, self.data_key)
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in role_cfg.model)[-40:]
        folder = self.run.features_dir() / f"{slug}-{key}"
        out, missing = {}, []
        for s in dict.fromkeys(splits):
            if (folder, s) in self._features:
                out[s] = self._features[folder, s]
            elif (folder / f"{s}.safetensors").exists():
                try:
                    out[s] = self._features[folder, s] = load_file(str(folder / f"{s}.safetensors"))["features"]
                except Exception:  # truncated or corrupt (a full disk, a killed copy): a cache, so recompute it
                    missing.append(s)
            else:
                missing.append(s)
        if missing:
            path = models.resolve(role_cfg.model)
            tokenizer = models.load_tokenizer(path)
            self.note_truncation(tokenizer, role_cfg.model, missing)
            backbone = models.load_backbone(path, role_cfg)
            for s in missing:
                f = pooled_features(backbone, tokenizer, self.texts(s), self.recipe.data.max_length,
                                    role_cfg.head.pooling, role_cfg.train.eval_batch_size, self.accelerator,
                                    desc=f"features {role_cfg.model} {s}")
                self.write_atomic(folder / f"{s}.safetensors", lambda p, f=f: save_file({"features": f}, str(p)))
                out[s] = self._features[folder, s] = f
            del backbone
        return out
