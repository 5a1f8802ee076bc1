"""The run directory, the bottom layer: where every stage's outputs live, atomic writes, cache keys,
and the prediction / label files stages exchange. Imports nothing of the pipeline above `errors`.

    <run>/config.yaml, env.json, results.json, report.md, *.png
    <run>/data[/seed<N>]/<split>                 the A/B/test splits (`datasets` on disk)
    <run>/features/<model>-<key>/<split>.safetensors
    <run>/seed<N>/weak, ceiling, transfer/<method>   one folder per model stage and seed
    <run>/evaluate, theory                       once per run

A sweep points data, features, weak and ceiling at folders shared by its pairs (`roots`).
A stage is finished when its folder's `metrics.json` holds its current cache key (written last).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

import pipeline

# the layout of a run directory and its results.json: bumped when a change makes older run directories
# unreadable (env.json and results.json record it; a run directory without it is format 1)
RUN_FORMAT = 1


def format_problem(run_dir: Path) -> str | None:
    """Why a run directory was made by an incompatible w2s (another run format), or None."""
    run_dir = Path(run_dir)
    for name in ("results.json", "env.json"):
        try:
            made = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        fmt = made.get("run_format", 1) if isinstance(made, dict) else 1
        if fmt != RUN_FORMAT:
            by = made.get("w2s") or (made.get("env") or {}).get("w2s") or "another version"
            return (f"{run_dir} was made by w2s {by} (run format {fmt}); this w2s {pipeline.__version__} reads run "
                    f"format {RUN_FORMAT}")
    return None


def cache_key(*parts) -> str:
    """16 hex digits of the sha256 of the package version and `parts` (JSON, sorted keys)."""
    blob = json.dumps([pipeline.__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def as_data(x):
    """A dataclass as a plain dict (for JSON and cache keys); anything else unchanged."""
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary sibling path, then rename it onto target (file or folder)."""
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
    atomic_write(target, lambda p: p.write_text(json.dumps(obj, indent=2, default=as_data) + "\n"))


def write_text(target: Path, text: str) -> None:
    atomic_write(target, lambda p: p.write_text(text))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def read_json_if_exists(path: Path) -> dict:
    return read_json(path) if Path(path).exists() else {}


# a stage folder's mid-training checkpoints (`train.checkpoint_every`): kept across a rerun of the same unit
# with the same cache key (the runner clears everything else of a half-finished attempt)
CHECKPOINTS = "checkpoints"


def predictions_file(split: str) -> str:
    """A stage's predictions on a scored split: predictions.jsonl for test, predictions_<split>.jsonl else."""
    return "predictions.jsonl" if split == "test" else f"predictions_{split}.jsonl"


def write_predictions(target: Path, ids, labels, probs: np.ndarray) -> None:
    """One JSON row per example: id, gold label, P(class 1). Full float precision: rounding ties confident
    predictions at 0 and 1 and moves AUROC."""
    rows = [json.dumps({"id": int(i), "label": int(y), "prob": float(p)}) for i, y, p in zip(ids, labels, probs[:, 1])]
    write_text(target, "\n".join(rows) + "\n")


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gold labels, P(class 1)) of a predictions.jsonl."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    return np.array([r["label"] for r in rows]), np.array([r["prob"] for r in rows])


def read_probs(path: Path) -> np.ndarray:
    """A predictions.jsonl as class probabilities [n, 2]."""
    _, p = read_predictions(path)
    return np.stack([1 - p, p], axis=1)


def text_columns(texts) -> dict:
    """A split's inputs as dataset columns: `text`, and for preference pairs (A, B) also `text_b`."""
    texts = list(texts)
    if texts and not isinstance(texts[0], str):
        return {"text": [a for a, _ in texts], "text_b": [b for _, b in texts]}
    return {"text": texts}


def save_labels(target: Path, ids, texts, gold, targets: np.ndarray) -> None:
    """Training labels of a split as a `datasets` folder: id, text, gt_label, soft_label, hard_label."""
    import datasets

    columns = {"id": list(ids), **text_columns(texts)}
    columns.update({"gt_label": [int(y) for y in gold],
                    "soft_label": targets[:, 1].astype(float).tolist(), "hard_label": targets.argmax(1).tolist()})
    atomic_write(target, lambda p: datasets.Dataset.from_dict(columns).save_to_disk(str(p)))


def read_soft_labels(folder: Path) -> np.ndarray:
    """The `soft_label` column of a labels folder as class probabilities [n, 2]."""
    import datasets

    ds = datasets.load_from_disk(str(folder))
    p = np.asarray(list(ds["soft_label"]), dtype=np.float32)
    return np.stack([1 - p, p], axis=1)


@dataclasses.dataclass
class RunDir:
    """Paths of one run: `root` is the run directory, `roots` re-points shared stages (sweeps)."""

    root: Path
    vary_split: bool = False
    roots: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)

    def data_dir(self, seed: int) -> Path:
        base = Path(self.roots.get("data", self.root)) / "data"
        return base / f"seed{seed}" if self.vary_split else base

    def features_dir(self) -> Path:
        return Path(self.roots.get("features", self.root)) / "features"

    def stage_dir(self, stage: str, seed: int | None = None, sub: str | None = None) -> Path:
        """The folder of a stage: data per split, evaluate/theory once, the model stages per seed."""
        if stage == "data":
            d = self.data_dir(seed)
        elif seed is None:
            d = self.root / stage
        else:
            d = Path(self.roots.get(stage, self.root)) / f"seed{seed}" / stage
        return d / sub if sub else d
