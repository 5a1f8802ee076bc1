"""Datasets: the registry (shipped files and the hub benchmark suite, `pipeline.suite`), reading user
files and local copies, formatting rows into examples, label mapping and the Burns split (the data stage,
`pipeline/stages/data.py`, runs them).

Split A (`train_weak`) trains the weak model on ground truth, B (`transfer`) is what the weak model
labels, and `test` scores everything; an optional `test_ood` is a shifted test set. Splits are
class-balanced unless `data.balance: false`, and fixed by `data.seed`. A source with its own test split
(a hub benchmark, a saved DatasetDict) gives `test` from it and A and B from its train split.

An example of a classification task is a text and a 0/1 label; of a preference task a pair of texts
(prompt + response A, prompt + response B) and label 1 when A is the preferred response. Which response
comes first is drawn per row (seeded by the row's position), so preference labels are balanced too.
"""

import hashlib
import json
import os
import random
import string
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.suite import SUITE

SPLITS = ("train_weak", "transfer", "test")


@dataclass(frozen=True)
class DatasetSpec:
    file: str  # inside the data folder
    description: str
    prompt: str | None = None  # zero/few-shot template for causal models; {text} is the input
    verbalizers: tuple[str, str] | None = None  # continuation tokens for label 0 and label 1
    task: str = "classification"
    licence: str = ""
    # a preference set built from a binary file: each label-1 text paired with a label-0 text (shuffled
    # with a fixed seed), the label-1 text being the preferred response; no prompt
    pairs_from_labels: bool = False
    checker: str | None = None  # generation: the answer checker (`pipeline.answers.CHECKERS`)


DATASETS: dict[str, DatasetSpec] = {
    "multiemo": DatasetSpec(
        "multiemo.jsonl.gz",
        "BIG-bench multiemo (English reviews), positive vs negative",
        "Review: {text}\nSentiment:",
        (" negative", " positive"),
        licence="CC BY 4.0 / MIT (MultiEmo), Apache-2.0 (BIG-bench)",
    ),
    "fact_checker": DatasetSpec(
        "fact_checker.jsonl.gz",
        "BIG-bench fact_checker/fever claims, true vs false",
        "Claim: {text}\nTrue or false? Answer:",
        (" false", " true"),
        licence="CC BY-SA 3.0 (FEVER), Apache-2.0 (BIG-bench)",
    ),
    "hhh_alignment": DatasetSpec(
        "hhh_alignment.jsonl.gz",
        "BIG-bench hhh_alignment: dialogues with a more and a less helpful, honest, harmless reply (preference)",
        task="preference", licence="Apache-2.0 (BIG-bench; Askell et al. 2021)",
    ),
    "multiemo_pairs": DatasetSpec(
        "multiemo.jsonl.gz",
        "multiemo reviews as preference pairs: a positive review is preferred to a negative one (a sentiment "
        "reward, as in Ziegler et al. 2019)", task="preference", pairs_from_labels=True,
        licence="CC BY 4.0 / MIT (MultiEmo), Apache-2.0 (BIG-bench)",
    ),
    "social_iqa": DatasetSpec(
        "social_iqa.jsonl.gz",
        "BIG-bench social_iqa: a social situation and question, the correct answer vs a distractor (preference)",
        task="preference", licence="Apache-2.0 (BIG-bench); Social IQa itself states none (data/README.md)",
    ),
    "arithmetic": DatasetSpec(
        "arithmetic.jsonl.gz",
        "BIG-bench arithmetic: 1- to 5-digit addition, subtraction, multiplication, division; the answer is a "
        "number (generation, exact match)", task="generation", checker="exact", licence="Apache-2.0 (BIG-bench)",
    ),
}


def known(name: str) -> bool:
    return name in DATASETS or name in SUITE


def task_of(name: str) -> str:
    """The task kind a registry dataset is for."""
    return DATASETS[name].task if name in DATASETS else SUITE[name].task


def checker_of(name: str | None) -> str | None:
    """A generative registry dataset's answer checker (None: a user's file or not generative)."""
    spec = DATASETS.get(name) or SUITE.get(name) if name else None
    return getattr(spec, "checker", None)


def dataset_prompt(name: str | None) -> tuple[str | None, list[str] | None]:
    """The registry dataset's template and verbalizers, (None, None) for a user's file."""
    spec = DATASETS.get(name) or SUITE.get(name) if name else None
    if spec is None or spec.prompt is None or spec.verbalizers is None:
        return None, None
    return spec.prompt, list(spec.verbalizers)


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


def suite_dir() -> Path:
    """Where `w2s data prepare` caches hub datasets: $W2S_DATASETS_DIR, else ~/.cache/w2s/datasets."""
    return Path(os.environ.get("W2S_DATASETS_DIR", Path.home() / ".cache" / "w2s" / "datasets")).expanduser()


def source_path(cfg) -> Path:
    """The file or folder a data config reads."""
    if cfg.path is not None:
        return Path(cfg.path).expanduser()
    if cfg.name in SUITE:
        path = suite_dir() / cfg.name
        if not path.exists():
            raise UserError(f"hub dataset {cfg.name!r} is not prepared ({path} does not exist)",
                            f"run `w2s data prepare {cfg.name}` where a hub is reachable (copy the folder here "
                            f"if that is another machine), or point data.path at your local copy")
        return path
    path = data_dir() / DATASETS[cfg.name].file
    if not path.exists():
        raise UserError(f"shipped dataset {cfg.name!r} not found at {path}",
                        "install the project from its git checkout (pip install -e .) or set W2S_DATA_DIR")
    return path


# ---------------------------------------------------------------------------------------------- reading
_READERS = {".jsonl": "json", ".json": "json", ".jsonl.gz": "json", ".json.gz": "json",
            ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}


def _reader(path: Path) -> str | None:
    name = path.name.lower()
    return next((v for k, v in _READERS.items() if name.endswith(k)), None)


def _check_utf8(path: Path) -> None:
    """A text file (plain or gzipped) that is not UTF-8 is a UserError naming the first bad byte."""
    import codecs
    import gzip

    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                raise UserError(f"{path} is not UTF-8 text: byte 0x{block[e.start]:02x} at offset {offset + e.start:,} "
                                f"({e.reason})", "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
            offset += len(block)


def _read_files(paths: list[Path], kind: str):
    import datasets

    if kind in ("json", "csv"):
        for p in paths:
            _check_utf8(p)
    try:
        return getattr(datasets.Dataset, f"from_{kind}")([str(p) for p in paths] if len(paths) > 1 else str(paths[0]))
    except Exception as e:  # malformed files surface as many different pyarrow/json errors
        raise UserError(f"could not read {paths[0]} as {kind}: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                        "check the file's format") from None


def _split_of(path: Path) -> str:
    """The split a hub-layout file belongs to: `train-00000-of-00001.parquet`, `validation.jsonl`,
    `<config>/test/0000.parquet` (the parquet-conversion branch)."""
    stem = path.name.split(".")[0].split("-")[0]
    return path.parent.name if stem.isdigit() else stem


def read_splits(path: Path) -> dict:
    """A local copy as {split name: `datasets.Dataset`}: a file (one split, `train`), a `save_to_disk`
    folder (a Dataset: `train`; a DatasetDict: its splits), or a folder of parquet / JSON Lines / CSV
    files named by split as the hub lays them out."""
    import datasets

    datasets.disable_progress_bars()
    if not path.exists():
        raise UserError(f"data file not found: {path}", "check data.path (relative paths start at the current folder)")
    if path.is_file():
        kind = _reader(path)
        if kind is None:
            raise UserError(f"unsupported data file type: {path.name}",
                            "use .jsonl(.gz), .json, .csv(.gz), .parquet or a datasets.save_to_disk folder")
        return {"train": _read_files([path], kind)}
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError or ValueError for damaged folders
            raise UserError(f"{path} is not a readable `datasets.save_to_disk` folder ({e})") from None
        return dict(ds) if isinstance(ds, datasets.DatasetDict) else {"train": ds}
    files = sorted(p for p in path.rglob("*") if p.is_file() and _reader(p) and not p.name.startswith("."))
    if not files:
        raise UserError(f"{path} is a folder with neither a `datasets.save_to_disk` dataset nor data files",
                        "point data.path at a .jsonl/.csv/.parquet file, a save_to_disk folder, or a folder of "
                        "<split>.parquet / <split>.jsonl files")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(_split_of(f), []).append(f)
    return {s: _read_files(fs, _reader(fs[0])) for s, fs in groups.items()}


def _parse_where(text: str, key: str) -> tuple[str, bool, str]:
    op = "!=" if "!=" in text else "="
    column, _, value = text.partition(op)
    if not column.strip() or not _:
        raise UserError(f"{key}: {text!r} is not `column=value` or `column!=value`", f"write e.g. {key}=domain=books")
    return column.strip(), op == "=", value.strip()


_TRUE, _FALSE = {"true", "yes"}, {"false", "no"}


def same_value(value, written: str) -> bool:
    """Whether a column's value is the one a user wrote as text: numbers compared as numbers (5 = 5.0),
    booleans as true/false or yes/no (YAML reads an unquoted yes as true), anything else as text."""
    if isinstance(value, bool):
        return str(written).strip().lower() in (_TRUE if value else _FALSE)
    text = str(written).strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    if isinstance(value, str) and text in ("True", "False"):  # a YAML boolean: `yes` / `no` labels
        return value == text or value.lower() in (_TRUE if text == "True" else _FALSE)
    return str(value) == text


def check_where(text: str, key: str) -> None:
    """The syntax of a where filter (no data needed: `w2s validate` checks it up front)."""
    _parse_where(text, key)


def _filter(table, where: str | None, key: str, negate: bool = False):
    """Rows of `table` whose column equals (or, `!=`, differs from) the value (`same_value`)."""
    if not where:
        return table
    column, equal, value = _parse_where(where, key)
    if column not in table.column_names:
        raise UserError(f"{key}: column {column!r} not in the data (columns: {', '.join(table.column_names)})")
    keep = [same_value(v, value) == (equal != negate) for v in table.with_format("arrow")[column].to_pylist()]
    return table.select(np.flatnonzero(keep))


def _filter_pools(pools: dict, where: str | None, key: str, negate: bool = False) -> dict:
    """`_filter` on every pool; a filter that keeps no row of any pool is a user error naming the values."""
    out = {k: _filter(v, where, key, negate) for k, v in pools.items()}
    if where and not negate and not any(t.num_rows for t in out.values()):
        column = _parse_where(where, key)[0]
        values = sorted({str(v) for t in pools.values() for v in t.with_format("arrow")[column].to_pylist()})
        rows = sum(t.num_rows for t in pools.values())
        raise UserError(f"{key}: {where!r} matches none of the {rows} rows (values of {column!r}: "
                        f"{', '.join(map(repr, values[:8]))}{' ...' if len(values) > 8 else ''})",
                        "use one of the values above")
    return out


# ---------------------------------------------------------------------------------------------- examples
@dataclass
class Source:
    """Every usable example of a data config: inputs (texts, or (A, B) text pairs), 0/1 labels, the pool
    each came from (`all` or the native `train` / `test`, and `test_ood`), and a description."""

    texts: list
    labels: np.ndarray
    pools: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.texts)


def _columns_needed(cfg, task: str) -> list[tuple[str, str]]:
    if task == "generation":
        return [("data.answer_field", cfg.answer_field)] + (
            [] if cfg.template is not None else [("data.prompt_field", cfg.prompt_field)])
    if task == "preference":
        return [("data.prompt_field", cfg.prompt_field), ("data.chosen_field", cfg.chosen_field),
                ("data.rejected_field", cfg.rejected_field)]
    if cfg.template is not None:
        return [("data.label_field", cfg.label_field)]
    return [("data.text_field", cfg.text_field), ("data.label_field", cfg.label_field)]


def check_template(template: str) -> list[str]:
    """The placeholders of a template, or a UserError for a malformed one (no data needed)."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise UserError(f"data.template {template!r} is not a valid template ({e})",
                        "write placeholders as {column}; a literal brace as {{ or }}") from None
    if not names:
        raise UserError(f"data.template {template!r} has no {{column}} placeholder",
                        "write e.g. \"{passage}\\nQuestion: {question}?\"")
    return names


def _template_fields(template: str, columns: list[str]) -> list[str]:
    names = check_template(template)
    bad = [n for n in names if n not in columns]
    if bad:
        raise UserError(f"data.template: placeholder {{{bad[0]}}} names no column (columns: {', '.join(columns)})",
                        "use the columns above as {column}")
    return names


def _raw_examples(cfg, task: str, pool: str, table) -> tuple[list[dict], int]:
    """A pool's rows as examples ({text, label} or {prompt, chosen, rejected}) and the number of rows read."""
    rows = table.num_rows
    if cfg.name in SUITE:
        entry = SUITE[cfg.name]
        missing = [c for c in entry.columns if c not in table.column_names]
        if missing:
            raise UserError(f"the local copy of {cfg.name!r} has no column {missing[0]!r} (columns: "
                            f"{', '.join(table.column_names)}); expected the hub's schema of {entry.hub_id}",
                            f"prepare it with `w2s data prepare {cfg.name}` or save the hub's files unchanged")
        out = []
        for i, row in enumerate(table.to_list()):
            for ex in entry.format(row, random.Random(f"{cfg.name}/{pool}/{i}")):
                out.append({**ex, "row": i})
        return out, rows
    columns = table.column_names
    for role, fld in _columns_needed(cfg, task):
        if fld not in columns:
            raise UserError(f"{role}: column {fld!r} not in the data (columns: {', '.join(columns)})",
                            f"set {role} to one of the columns above")
    arrow = table.with_format("arrow")  # whole columns as Python lists at once: 100x faster than row iteration
    if task == "preference":
        cols = [arrow[c].to_pylist() for c in (cfg.prompt_field, cfg.chosen_field, cfg.rejected_field)]
        return [{"prompt": p or "", "chosen": c, "rejected": r, "row": i}
                for i, (p, c, r) in enumerate(zip(*cols))], rows
    if cfg.template is not None:
        names = _template_fields(cfg.template, columns)
        cols = {n: arrow[n].to_pylist() for n in dict.fromkeys(names)}
        texts = [None if any(cols[n][i] is None for n in cols) else cfg.template.format(**{n: cols[n][i] for n in cols})
                 for i in range(rows)]
    else:
        texts = arrow[cfg.prompt_field if task == "generation" else cfg.text_field].to_pylist()
    if task == "generation":  # a reference answer is text; a number column's values become their digits
        labels = [None if _missing(a) else a if isinstance(a, str) else _answer_text(a)
                  for a in arrow[cfg.answer_field].to_pylist()]
    else:
        labels = arrow[cfg.label_field].to_pylist()
    return [{"text": t, "label": y, "row": i} for i, (t, y) in enumerate(zip(texts, labels))], rows


def _missing(value) -> bool:
    """None, or NaN (how a float column, e.g. one written by pandas, stores a missing value)."""
    return value is None or (isinstance(value, float) and value != value)


def _answer_text(value) -> str:
    """A non-text reference answer as text: 12.0 -> "12", True -> "true"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _usable(ex: dict, task: str) -> bool:
    if task == "generation":
        return all(isinstance(ex[k], str) and ex[k].strip() for k in ("text", "label"))
    if task == "preference":
        return (all(isinstance(ex[k], str) and ex[k].strip() for k in ("chosen", "rejected"))
                and isinstance(ex["prompt"], str) and ex["chosen"] != ex["rejected"])
    return isinstance(ex["text"], str) and bool(ex["text"].strip()) and not _missing(ex["label"])


def join_turn(prompt: str, response: str) -> str:
    """The text a reward model scores: prompt then response, a newline between unless one is there."""
    if not prompt:
        return response
    return prompt + response if prompt[-1].isspace() or response[:1].isspace() else f"{prompt}\n{response}"


def _label_map(values: list, positive: str | None, field_name: str, where: str) -> dict:
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(distinct) != 2:
        shown = ", ".join(repr(v) for v in distinct[:10]) + (" ..." if len(distinct) > 10 else "")
        raise UserError(f"label column {field_name!r} of {where} has {len(distinct)} distinct value(s) ({shown}); "
                        "a weak-to-strong task here is binary",
                        "pick a two-valued column with data.label_field, or filter/map your labels to two values")
    if positive is None:
        return {distinct[0]: 0, distinct[1]: 1}
    match = [v for v in distinct if same_value(v, positive)]
    if not match:
        raise UserError(f"data.positive_label {positive!r} is not one of the labels {distinct[0]!r}, {distinct[1]!r}")
    return {v: int(v == match[0]) for v in distinct}


def _pools(cfg) -> dict:
    """{pool: table} of a data config, its where filter applied: `all`, or the native `train` and `test`."""
    splits = read_splits(source_path(cfg))
    if cfg.name in SUITE:
        entry = SUITE[cfg.name]
        missing = [hub for role, hub in entry.splits.items() if role in ("train", "test") and hub not in splits]
        if missing:
            raise UserError(f"the local copy of {cfg.name!r} at {source_path(cfg)} has no {missing[0]!r} split "
                            f"(it has: {', '.join(splits)})", f"prepare it again with `w2s data prepare {cfg.name}`")
        pools = {role: splits[entry.splits[role]] for role in ("train", "test")}
    elif len(splits) == 1:
        pools = {"all": next(iter(splits.values()))}
        if cfg.path is None and DATASETS[cfg.name].pairs_from_labels:
            pools["all"] = _label_pairs(pools["all"], cfg.name)
    else:
        test = "test" if "test" in splits else "validation" if "validation" in splits else None
        if "train" not in splits or test is None:
            raise UserError(f"{source_path(cfg)} holds splits {', '.join(splits)}; w2s uses `train` with `test` "
                            "(or `validation`) as the held-out split, or one split it divides itself",
                            "name the splits train and test, or point data.path at one of them")
        pools = {"train": splits["train"], "test": splits[test]}
    return _filter_pools(pools, cfg.where, "data.where")


def _label_pairs(table, name: str):
    """{prompt: "", chosen: a label-1 text, rejected: a label-0 text} rows from a binary text file: both
    classes shuffled with a fixed seed and zipped (as many pairs as the smaller class has texts)."""
    import datasets

    arrow = table.with_format("arrow")
    texts, labels = arrow["text"].to_pylist(), arrow["label"].to_pylist()
    rng = random.Random(name)
    pos = [t for t, y in zip(texts, labels) if y == 1]
    neg = [t for t, y in zip(texts, labels) if y == 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    n = min(len(pos), len(neg))
    return datasets.Dataset.from_dict({"prompt": [""] * n, "chosen": pos[:n], "rejected": neg[:n]})


def load_source(cfg, task: str = "classification") -> Source:
    """Every usable example of `cfg` (and of its shifted test set), with every user mistake a UserError."""
    pools = _pools(cfg)
    ood = cfg.test_ood
    ood_pool = None
    if ood is not None and ood.name is None and ood.path is None:
        if not ood.where:
            raise UserError("data.test_ood needs a name, a path or a `where` filter",
                            "e.g. data.test_ood.where=domain=books (those rows become the shifted test set)")
        ood_pool = list(_filter_pools(pools, ood.where, "data.test_ood.where").values())
        pools = _filter_pools(pools, ood.where, "data.test_ood.where", negate=True)
    examples, info = [], {"path": str(source_path(cfg)), "native_splits": "test" in pools, "pools": {}}
    for pool, table in pools.items():
        exs, rows = _raw_examples(cfg, task, pool, table)
        examples += [(pool, e) for e in exs]
        info["pools"][pool] = {"rows": rows}
    if ood is not None:
        if ood_pool is None:
            if ood.name is not None:  # a registry dataset: its own file layout and fields
                ood_cfg = replace(type(cfg)(), name=ood.name, path=ood.path, where=ood.where, positive_label=None)
            else:  # the user's file: read like the main data
                ood_cfg = replace(cfg, name=None, path=ood.path, where=ood.where, test_ood=None)
            try:
                tables = list(_pools(ood_cfg).values())
            except UserError as e:
                raise UserError(f"data.test_ood: {e.message}", e.hint) from None
            info["test_ood_source"] = str(source_path(ood_cfg))
        else:
            ood_cfg, tables = cfg, ood_pool
            info["test_ood_source"] = f"rows of the data with {ood.where}"
        rows = 0
        for t in tables:
            try:
                exs, n = _raw_examples(ood_cfg, task, "test_ood", t)
            except UserError as e:
                raise UserError(f"data.test_ood: {e.message}", e.hint) from None
            examples += [("test_ood", e) for e in exs]
            rows += n
        info["pools"]["test_ood"] = {"rows": rows}
    usable = [(p, e) for p, e in examples if _usable(e, task)]
    for pool in info["pools"]:
        n_ex = sum(p == pool for p, _ in examples)
        kept = sum(p == pool for p, _ in usable)
        info["pools"][pool].update(examples=n_ex, usable=kept, dropped=n_ex - kept)
    info["dropped"] = sum(v["dropped"] for v in info["pools"].values())
    if not any(p != "test_ood" for p, _ in usable):
        what = {"preference": "pairs with two different non-empty responses",
                "generation": "a non-empty prompt and answer"}.get(task, "non-empty text")
        raise UserError(f"{info['path']} has no usable examples ({what})",
                        "check data.text_field / data.template (or the preference fields, or data.prompt_field "
                        "and data.answer_field for generation) name columns of strings")
    pools_of = np.array([p for p, _ in usable])
    if task == "generation":
        origin = SUITE[cfg.name].description if cfg.name in SUITE else cfg.answer_field
        info["answers"] = f"reference answers from {origin}"
        return Source([e["text"] for _, e in usable], np.array([e["label"] for _, e in usable], dtype=object),
                      pools_of, info)
    if task == "preference":
        texts, labels = [], []
        for pool, e in usable:
            a_first = random.Random(f"order/{pool}/{e['row']}").random() < 0.5
            a, b = (e["chosen"], e["rejected"]) if a_first else (e["rejected"], e["chosen"])
            texts.append((join_turn(e["prompt"], a), join_turn(e["prompt"], b)))
            labels.append(int(a_first))
        info["class_1"] = "response A is the preferred one (A/B order drawn per pair)"
        return Source(texts, np.array(labels, dtype=np.int64), pools_of, info)
    raw = [e["label"] for _, e in usable]
    if cfg.name in SUITE:
        mapping = {0: 0, 1: 1}
        info["class_1"] = f"label 1 of the {cfg.name} formatter ({SUITE[cfg.name].description})"
    else:
        main = [y for (p, _), y in zip(usable, raw) if p != "test_ood"]
        mapping = _label_map(main, cfg.positive_label, cfg.label_field, info["path"])
        info["class_1"] = f"{cfg.label_field} = {next(k for k, v in mapping.items() if v == 1)!r}"
    if ood is not None and ood.name is not None and ood.name in SUITE and cfg.name not in SUITE:
        mapping = {**mapping, **{k: k for k in (0, 1) if k not in mapping}}  # a formatter's labels are 0 / 1
    unknown = sorted({repr(y) for y in raw if y not in mapping})
    if unknown:
        raise UserError(f"the shifted test set has label values {', '.join(unknown)} that the data does not "
                        f"(labels: {', '.join(repr(k) for k in mapping)})",
                        "data.test_ood must share the data's label space")
    info["label_map"] = {str(k): v for k, v in mapping.items()}
    y = np.array([mapping[v] for v in raw], dtype=np.int64)
    return Source([e["text"] for _, e in usable], y, pools_of, info)


def load_examples(cfg, task: str = "classification") -> tuple[list, np.ndarray, dict]:
    """Texts (or pairs), 0/1 labels and a description of the source, all pools together."""
    src = load_source(cfg, task)
    return src.texts, src.labels, src.info


def pool_rows(cfg) -> dict[str, int]:
    """Rows per pool of the data source (`all`, or `train` and `test`); UserError when it cannot be read."""
    return {k: t.num_rows for k, t in _pools(cfg).items()}


# ---------------------------------------------------------------------------------------------- splits
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


def random_split(labels: np.ndarray, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets of the given sizes at the data's natural class ratio (`data.balance: false`)."""
    total = sum(sizes.values())
    if total > len(labels):
        raise UserError(f"data split too small: {total} examples "
                        f"({', '.join(f'{k}={v}' for k, v in sizes.items())}) requested, the data has {len(labels)}",
                        "lower data.n_train_weak / data.n_transfer / data.n_test, or use more data")
    perm = np.random.default_rng(seed).permutation(len(labels))
    out, start = {}, 0
    for name, n in sizes.items():
        out[name], start = perm[start:start + n], start + n
    return out


def _capped(labels: np.ndarray, sizes: dict[str, int], balance: bool, pool: str = "") -> dict[str, int]:
    """`sizes` scaled down (the same factor for each) until the pool can hold them: n_* as caps."""
    if not balance:
        total = sum(sizes.values())
        if total <= len(labels):
            return sizes
        s = {k: max(2, int(n * len(labels) / max(1, total))) for k, n in sizes.items()}
        while sum(s.values()) > len(labels) and max(s.values()) > 2:
            s[max(s, key=s.get)] -= 1
        return s
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        only = int(counts.argmax())
        raise UserError(f"the {pool} examples hold {counts[1 - only]} of class {1 - only} (and {counts[only]} of class "
                        f"{only}): a class-balanced split of them is impossible",
                        "check the where filters, or set data.balance: false to keep the natural class ratio")
    def fits(s):
        return all(sum((n + c) // 2 for n in s.values()) <= counts[c] for c in (0, 1))
    if fits(sizes):
        return sizes
    scale = 2 * counts.min() / max(1, sum(sizes.values()))
    s = {k: max(2, int(n * scale)) for k, n in sizes.items()}
    while not fits(s) and max(s.values()) > 2:
        big = max(s, key=s.get)
        s[big] -= 1
    return s


def draw_splits(source: Source, cfg, seed: int, balance: bool | None = None) -> dict[str, np.ndarray]:
    """Indices into `source` of A, B, test (and test_ood): from one pool as Burns et al. do, or test from
    the data's own test split and A, B from its train split, the n_* sizes being caps there. `balance`
    overrides cfg.balance; answers (a generation task's string labels) have no classes to balance."""
    balance = (cfg.balance if balance is None else balance) and source.labels.dtype != object
    split = balanced_split if balance else random_split
    out = {}
    sizes = split_sizes(cfg)
    if "all" in set(source.pools.tolist()):
        where = np.flatnonzero(source.pools == "all")
        parts = split(source.labels[where], sizes, seed)
        out.update({k: where[v] for k, v in parts.items()})
    else:
        for pool, names in (("train", ("train_weak", "transfer")), ("test", ("test",))):
            where = np.flatnonzero(source.pools == pool)
            want = _capped(source.labels[where], {k: sizes[k] for k in names}, balance, f"data's own {pool}")
            parts = split(source.labels[where], want, seed)
            out.update({k: where[v] for k, v in parts.items()})
    if cfg.test_ood is not None:
        where = np.flatnonzero(source.pools == "test_ood")
        if len(where) < 2:
            raise UserError(f"data.test_ood has {len(where)} usable example(s)",
                            "check its name / path / where filter")
        want = _capped(source.labels[where], {"test_ood": cfg.test_ood.n or cfg.n_test}, balance, "test_ood")
        out.update({k: where[v] for k, v in split(source.labels[where], want, seed + 1).items()})
    return out


# ---------------------------------------------------------------------------------- weak models' own data
def source_label(src) -> str:
    """How the report names a weak model's own source (`""` without one): `, trained on domain=hotels`."""
    if src is None:
        return ""
    what = " ".join(x for x in (src.name, src.path and Path(src.path).name, src.where) if x)
    return f", trained on {what}"


def source_split(src) -> str:
    """The split a teacher with its own source data trains on: one per distinct source."""
    blob = json.dumps([src.name, src.path, src.where, src.n])
    return "train_weak." + hashlib.sha256(blob.encode()).hexdigest()[:8]


def weak_sources(recipe) -> list[tuple[str, str, object]]:
    """(recipe key, split, source) of every weak model that trains on its own source data (`data:` of the
    weak block or of an ensemble teacher): the weak model's A replaces `train_weak`, a teacher's is its
    own split. Empty when every weak model trains on A drawn from `data:`."""
    out = [("weak.data", "train_weak", recipe.weak.data)] if getattr(recipe.weak, "data", None) else []
    for i, m in enumerate(recipe.methods):
        for j, t in enumerate(getattr(m, "teachers", ())):
            if t.data is not None:
                out.append((f"methods[{i}].teachers[{j}].data", source_split(t.data), t.data))
    return out


def source_cfg(cfg, src):
    """The data config a weak model's own source is read with: a registry dataset with its own fields, a
    file read like the data, or the data's file with `src.where` in place of data.where."""
    if src.name is not None:
        return replace(type(cfg)(), name=src.name, path=src.path, where=src.where, max_length=cfg.max_length,
                       balance=cfg.balance)
    if src.path is not None:
        return replace(cfg, name=None, path=src.path, where=src.where, test_ood=None)
    if not src.where:
        raise UserError("a weak model's data: needs a name, a path or a `where` filter",
                        "e.g. weak.data.where=domain=hotels (the weak model trains on those rows of the data)")
    return replace(cfg, where=src.where, test_ood=None)


def draw_weak_source(cfg, src, task: str, seed: int, exclude: set, label_map: dict | None,
                     key: str = "weak.data") -> tuple[list, np.ndarray, np.ndarray, dict]:
    """A weak model's training split from its own source: up to `src.n` (default data.n_train_weak) examples,
    class-balanced as data.balance says, none of whose texts is in `exclude` (B, test and test_ood: no
    leakage when the source overlaps the data), never from the source's own test split. Returns texts,
    labels, row ids into that source, and a description."""
    try:
        scfg = source_cfg(cfg, src)
        source = load_source(scfg, task)
    except UserError as e:
        raise UserError(f"{key}: {e.message}", e.hint) from None
    theirs = source.info.get("label_map")
    if label_map is not None and theirs is not None and set(theirs) != set(label_map):
        raise UserError(f"{key}: its labels ({', '.join(theirs)}) are not the data's ({', '.join(label_map)})",
                        "a weak model's own data must share the data's label space")
    usable = np.array([i for i, (p, t) in enumerate(zip(source.pools, source.texts))
                       if p != "test" and t not in exclude], dtype=np.int64)
    overlap = sum(1 for p, t in zip(source.pools, source.texts) if p != "test" and t in exclude)
    n = src.n or cfg.n_train_weak
    labels = source.labels[usable]
    balance = cfg.balance and labels.dtype != object
    if len(usable) < 2:
        raise UserError(f"{key}: {len(usable)} usable example(s) once B, test and test_ood are left out",
                        "check its name / path / where filter")
    want = _capped(labels, {"train_weak": n}, balance, key) if balance else {"train_weak": min(n, len(usable))}
    idx = usable[(balanced_split if balance else random_split)(labels, want, seed + 2)["train_weak"]]
    origin = str(source_path(scfg)) + (f" where {src.where}" if src.where else "")
    info = {"source": origin, "size": len(idx), "usable": int(len(usable)), "left_out_overlap": int(overlap)}
    return [source.texts[i] for i in idx], source.labels[idx], idx, info


def weak_source_splits(recipe, source: Source, parts: dict, seed: int, errors: list | None = None) -> dict:
    """Every weak model's own training split (`weak_sources`), once per split, drawn without the texts of
    B, test and test_ood (`parts` indexes `source`): {split: (texts, labels, ids, description)}. With
    `errors`, a source's problem is appended there (preflight reports them all) instead of raised."""
    exclude = {source.texts[i] for name in ("transfer", "test", "test_ood") for i in parts.get(name, [])}
    out = {}
    for key, split, src in weak_sources(recipe):
        if split in out:
            continue
        try:
            out[split] = draw_weak_source(recipe.data, src, recipe.task, seed, exclude, source.info.get("label_map"),
                                          key)
        except UserError as e:
            if errors is None:
                raise
            errors.append(str(e))
    return out


def split_sizes(cfg) -> dict[str, int]:
    return {"train_weak": cfg.n_train_weak, "transfer": cfg.n_transfer, "test": cfg.n_test}


def fingerprint(texts: list, labels) -> str:
    """16 hex digits identifying a split's texts (or text pairs) and labels (in the manifest)."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(t.encode() if isinstance(t, str) else b"\x02".join(x.encode() for x in t))
        h.update(b"\x00" + (y.encode() if isinstance(y, str) else b"%d" % int(y)) + b"\x01")
    return h.hexdigest()[:16]


def _path_identity(path: Path) -> list:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path.resolve())] + [[str(p.relative_to(path)) if p != path else p.name, p.stat().st_size,
                                     int(p.stat().st_mtime)] for p in files]


def file_fingerprint(cfg) -> str:
    """Cheap identity of the data source (and shifted test source) for cache keys: paths, sizes, mtimes."""
    parts = [_path_identity(source_path(cfg))]
    ood = cfg.test_ood
    if ood is not None and (ood.name or ood.path):
        parts.append(_path_identity(source_path(replace(cfg, name=ood.name, path=ood.path, test_ood=None))))
    return json.dumps(parts)


# ---------------------------------------------------------------------------------------------- prepare
def prepare(name: str, out: Path | None = None) -> Path:
    """Download a hub dataset of the registry at its pinned revision (the splits it uses) into `out`
    (default: `suite_dir()/name`) as a `save_to_disk` folder; afterwards runs read it offline."""
    from pipeline.rundir import atomic_write
    from pipeline.suite import load_kwargs

    if name not in SUITE:
        raise UserError(f"{name!r} is not a hub dataset of the registry"
                        + (" (it is shipped: nothing to prepare)" if name in DATASETS else ""),
                        f"hub datasets: {', '.join(SUITE)} (`w2s data list`)")
    import datasets
    from huggingface_hub import HfApi

    entry = SUITE[name]
    target = Path(out).expanduser() if out else suite_dir() / name
    kwargs = load_kwargs(entry)
    try:
        # one quick request first: without a hub, fail in seconds rather than after datasets' retries
        HfApi().dataset_info(entry.hub_id, revision=entry.revision, timeout=10)
        splits = {hub: datasets.load_dataset(**kwargs, split=hub) for hub in dict.fromkeys(entry.splits.values())}
    except Exception as e:  # offline, unknown revision, hub errors: many exception types, one user-facing cause
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"could not download {name} ({entry.hub_id} at revision {entry.revision[:12]}): {first}",
                        "this needs a machine that reaches the hub; elsewhere, copy a prepared folder there and "
                        f"set data.path (with data.name: {name})") from None
    atomic_write(target, lambda p: datasets.DatasetDict(splits).save_to_disk(str(p)))
    return target
