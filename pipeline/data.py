"""Datasets: the registry of shipped datasets, loading user files, label mapping and the Burns split
(the data stage, `pipeline/stages/data.py`, runs them).

Split A (`train_weak`) trains the weak model on ground truth, B (`transfer`) is what the weak model
labels, and `test` scores everything. Splits are label-balanced and fixed by `data.seed`.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

SPLITS = ("train_weak", "transfer", "test")


@dataclass(frozen=True)
class DatasetSpec:
    file: str  # inside the data folder
    description: str
    prompt: str  # zero/few-shot template for causal models; {text} is the input
    verbalizers: tuple[str, str]  # continuation tokens for label 0 and label 1


DATASETS: dict[str, DatasetSpec] = {
    "multiemo": DatasetSpec(
        "multiemo.jsonl.gz",
        "BIG-bench multiemo (English reviews), positive vs negative",
        "Review: {text}\nSentiment:",
        (" negative", " positive"),
    ),
    "fact_checker": DatasetSpec(
        "fact_checker.jsonl.gz",
        "BIG-bench fact_checker/fever claims, true vs false",
        "Claim: {text}\nTrue or false? Answer:",
        (" false", " true"),
    ),
}


def dataset_prompt(name: str | None) -> tuple[str | None, list[str] | None]:
    """The shipped dataset's template and verbalizers, (None, None) for a user's file."""
    spec = DATASETS.get(name) if name else None
    return (spec.prompt, list(spec.verbalizers)) if spec else (None, None)


def prompt_spec(default: tuple, template: str | None, verbalizers: list[str] | None) -> tuple[str, list[str]]:
    """The template and verbalizers to use: the method's own, else `default` (the dataset's)."""
    template = template or default[0]
    verbalizers = verbalizers or (list(default[1]) if default[1] else None)
    if template is None or verbalizers is None:
        raise UserError("prompting a causal model needs a template and two verbalizers for this dataset",
                        "set the method's `prompt` (with a {text} placeholder) and `verbalizers` "
                        "(two strings, label 0 then label 1)")
    if "{text}" not in template:
        raise UserError(f"prompt template {template!r} has no {{text}} placeholder",
                        "write e.g. 'Review: {text}\\nSentiment:'")
    if len(verbalizers) != 2:
        raise UserError(f"verbalizers must be two strings (label 0, label 1), got {verbalizers!r}")
    return template, verbalizers


def data_dir() -> Path:
    """The shipped data folder: $W2S_DATA_DIR, else `data/` beside the package (editable install)."""
    return Path(os.environ.get("W2S_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


def source_path(cfg) -> Path:
    if cfg.path is not None:
        return Path(cfg.path).expanduser()
    path = data_dir() / DATASETS[cfg.name].file
    if not path.exists():
        raise UserError(f"shipped dataset {cfg.name!r} not found at {path}",
                        "install the project from its git checkout (pip install -e .) or set W2S_DATA_DIR")
    return path


def _read_table(path: Path):
    """Load a local file or `save_to_disk` folder into a `datasets.Dataset`."""
    import datasets

    datasets.disable_progress_bars()
    if not path.exists():
        raise UserError(f"data file not found: {path}", "check data.path (relative paths start at the current folder)")
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError or ValueError for foreign folders
            raise UserError(f"{path} is a folder but not a `datasets.save_to_disk` dataset ({e})",
                            "point data.path at a .jsonl/.csv/.parquet file or a save_to_disk folder") from None
        if isinstance(ds, datasets.DatasetDict):
            raise UserError(f"{path} holds several splits ({', '.join(ds)}); w2s makes its own split",
                            f"point data.path at one of them, e.g. {path / next(iter(ds))}")
        return ds
    name = path.name.lower()
    readers = {".jsonl": "json", ".json": "json", ".jsonl.gz": "json", ".json.gz": "json",
               ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}
    kind = next((v for k, v in readers.items() if name.endswith(k)), None)
    if kind is None:
        raise UserError(f"unsupported data file type: {path.name}",
                        "use .jsonl(.gz), .json, .csv(.gz), .parquet or a datasets.save_to_disk folder")
    try:
        return getattr(datasets.Dataset, f"from_{kind}")(str(path))
    except Exception as e:  # malformed files surface as many different pyarrow/json errors
        raise UserError(f"could not read {path} as {kind}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                        "check the file's format") from None


def _label_map(values: list, positive: str | None, field: str, path: Path) -> dict:
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(distinct) != 2:
        shown = ", ".join(repr(v) for v in distinct[:10]) + (" ..." if len(distinct) > 10 else "")
        raise UserError(f"label column {field!r} of {path} has {len(distinct)} distinct value(s) ({shown}); "
                        "a weak-to-strong task here is binary",
                        "pick a two-valued column with data.label_field, or filter/map your labels to two values")
    if positive is None:
        return {distinct[0]: 0, distinct[1]: 1}
    match = [v for v in distinct if str(v) == str(positive)]
    if not match:
        raise UserError(f"data.positive_label {positive!r} is not one of the labels {distinct[0]!r}, {distinct[1]!r}")
    return {v: int(v == match[0]) for v in distinct}


def load_examples(cfg) -> tuple[list[str], np.ndarray, dict]:
    """Texts, 0/1 labels and a description of the source, with every user mistake as a UserError."""
    path = source_path(cfg)
    ds = _read_table(path)
    columns = ds.column_names
    for role, fld in (("data.text_field", cfg.text_field), ("data.label_field", cfg.label_field)):
        if fld not in columns:
            raise UserError(f"{role}: column {fld!r} not in {path} (columns: {', '.join(columns)})",
                            f"set {role} to one of the columns above")
    table = ds.with_format("arrow")  # whole columns as Python lists at once: 100x faster than row iteration
    texts, labels = table[cfg.text_field].to_pylist(), table[cfg.label_field].to_pylist()
    keep = [i for i, (t, y) in enumerate(zip(texts, labels)) if isinstance(t, str) and t.strip() and y is not None]
    if not keep:
        raise UserError(f"column {cfg.text_field!r} of {path} has no non-empty text",
                        "data.text_field must name a column of strings")
    texts = [texts[i] for i in keep]
    labels = [labels[i] for i in keep]
    mapping = _label_map(labels, cfg.positive_label, cfg.label_field, path)
    y = np.array([mapping[v] for v in labels], dtype=np.int64)
    source = {"path": str(path), "rows": len(ds), "usable_rows": len(keep),
              "label_map": {str(k): v for k, v in mapping.items()}}
    return texts, y, source


def row_count(cfg) -> int:
    """Rows in the data source (UserError when it cannot be read)."""
    return _read_table(source_path(cfg)).num_rows


def balanced_split(labels: np.ndarray, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint label-balanced index sets of the given sizes (odd sizes: class 1 gets the extra one)."""
    rng = np.random.default_rng(seed)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in (0, 1)}
    need = {c: sum((n + c) // 2 for n in sizes.values()) for c in (0, 1)}
    for c in (0, 1):
        if len(pools[c]) < need[c]:
            total = sum(sizes.values())
            raise UserError(
                f"data split too small: a balanced split of {total} examples "
                f"({', '.join(f'{k}={v}' for k, v in sizes.items())}) needs {need[c]} of class {c}, "
                f"the data has {len(pools[c])}",
                "lower data.n_train_weak / data.n_transfer / data.n_test, or use more data",
            )
    out = {}
    for name, n in sizes.items():
        idx = np.array([pools[0].pop() for _ in range(n // 2)] + [pools[1].pop() for _ in range((n + 1) // 2)],
                       dtype=np.int64)
        out[name] = rng.permutation(idx)
    return out


def split_sizes(cfg) -> dict[str, int]:
    return {"train_weak": cfg.n_train_weak, "transfer": cfg.n_transfer, "test": cfg.n_test}


def fingerprint(texts: list[str], labels) -> str:
    """16 hex digits identifying a split's texts and labels (in the manifest)."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(t.encode())
        h.update(b"\x00%d\x01" % int(y))
    return h.hexdigest()[:16]


def file_fingerprint(cfg) -> str:
    """Cheap identity of the data source for cache keys: path, size and mtime."""
    path = source_path(cfg)
    stat = path.stat()
    return json.dumps([str(path.resolve()), stat.st_size, int(stat.st_mtime)])
