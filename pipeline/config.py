"""Recipe schema: nested dataclasses with help text, strict YAML loading and dotted overrides.

A recipe is plain data. Loading reports *every* problem at once (dotted path, what was expected,
a did-you-mean for misspelled keys), so a user fixes a recipe in one pass.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from pipeline.errors import UserError
from pipeline.losses import LossConfig
from pipeline.theory.config import TheoryConfig


def _help(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class DataConfig:
    name: Optional[str] = _help(
        "shipped dataset from the registry (`w2s data list`); leave null when `path` is set", default=None
    )
    path: Optional[str] = _help(
        "your own data: a .jsonl/.jsonl.gz/.json, .csv or .parquet file, or a `datasets.save_to_disk` folder",
        default=None,
    )
    text_field: str = _help("column holding the input text", default="text")
    label_field: str = _help("column holding the label; exactly two distinct values (numbers or strings)",
                             default="label")
    positive_label: Optional[str] = _help(
        "which of the two label values is class 1 (written as text); default: the larger one in sorted order",
        default=None,
    )
    n_train_weak: int = _help("split A: examples that train the weak model on ground truth", default=500)
    n_transfer: int = _help("split B: the transfer set the weak model labels (and the ceiling trains on)",
                            default=500)
    n_test: int = _help("test split every model is scored on", default=500)
    seed: int = _help("seed of the balanced A/B/test split (fixed across training seeds)", default=0)
    vary_split: bool = _help("draw a new A/B/test split for every training seed (split seed = data.seed + "
                             "training seed); default: one split shared by all seeds", default=False)
    max_length: int = _help("truncate inputs to this many tokens", default=64)


@dataclass
class EarlyStoppingConfig:
    enabled: bool = _help("hold out a slice of the training split, evaluate during training, keep the best "
                          "checkpoint and stop when it stops improving (also head mode with solver adamw)",
                          default=False)
    val_fraction: float = _help("share of the training split held out for selection (not trained on)", default=0.1)
    metric: Literal["loss", "accuracy"] = _help("selection metric on the held-out slice: cross-entropy against "
                                                "its labels (lower is better) or accuracy", default="loss")
    evals_per_epoch: int = _help("evaluations per pass over the training data", default=2)
    patience: int = _help("stop after this many evaluations without improvement (0: never stop early, "
                          "just keep the best)", default=3)
    select_on: Literal["labels", "gold"] = _help(
        "labels: the held-out slice's own training labels (weak labels in transfer stages: a legitimate W2S "
        "result); gold: its ground truth, an ORACLE that no real weak-to-strong setting has (flagged in the "
        "report)", default="labels")


@dataclass
class TrainConfig:
    epochs: float = _help("passes over the training split (full and lora modes)", default=2.0)
    lr: float = _help("peak learning rate of AdamW", default=5e-5)
    batch_size: int = _help("examples per optimiser step over all processes (the global batch, split between "
                            "them; a multiple of the process count), before accumulation", default=16)
    grad_accum: int = _help("gradient accumulation steps", default=1)
    warmup_ratio: float = _help("fraction of optimiser steps spent warming the learning rate up", default=0.1)
    schedule: Literal["cosine", "linear", "constant"] = _help("learning-rate schedule after warm-up",
                                                             default="cosine")
    weight_decay: float = _help("AdamW weight decay", default=0.01)
    max_grad_norm: float = _help("gradient clipping norm (0 disables)", default=1.0)
    eval_batch_size: int = _help("batch size for labelling and feature extraction", default=64)
    group_by_length: bool = _help("batch examples of similar length together (less padding)", default=True)
    early_stopping: EarlyStoppingConfig = field(
        default_factory=EarlyStoppingConfig,
        metadata={"help": "best-checkpoint selection on a held-out slice of the training labels"})


@dataclass
class HeadConfig:
    pooling: Literal["mean", "last"] = _help(
        "how token states become one feature vector: mean over tokens, or the last real token", default="mean"
    )
    l2_grid: list[float] = _help(
        "L2 strengths tried for the linear head; the best is chosen by k-fold CV on the head's own training labels",
        default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    )
    cv_folds: int = _help("folds of that cross-validation", default=5)
    max_iter: int = _help("Newton iterations per head fit (it converges in ~10)", default=30)
    solver: Literal["auto", "newton", "adamw"] = _help(
        "newton: exact L2-regularised cross-entropy fit; adamw: mini-batch training with the method's loss "
        "(needed for logconf & co. and early stopping), same L2; auto: newton for plain xent without early "
        "stopping, else adamw", default="auto")
    epochs: int = _help("passes over the training split (solver adamw)", default=30)
    lr: float = _help("AdamW learning rate on standardised features (solver adamw); 1e-3 keeps the path smooth "
                      "enough for early stopping to pick good iterates (measured in README)", default=0.001)
    batch_size: int = _help("mini-batch size (solver adamw)", default=32)


@dataclass
class LoraConfig:
    r: int = _help("LoRA rank", default=8)
    alpha: int = _help("LoRA alpha (scale = alpha / r)", default=16)
    dropout: float = _help("dropout on the LoRA branch", default=0.05)
    target_modules: Optional[list[str]] = _help(
        "module names to adapt; null picks peft's default for the architecture", default=None
    )


@dataclass
class ModelConfig:
    model: str = _help("model alias (`w2s models list`), a local folder, or a hub id (needs a hub)",
                       default="minilm")
    mode: Literal["full", "lora", "head"] = _help(
        "full: fine-tune every weight; lora: peft adapters + classifier; head: frozen backbone, features cached "
        "once per split, only a linear head trained (Burns et al.'s linear probe)",
        default="full",
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "fine-tuning loop settings"})
    head: HeadConfig = field(default_factory=HeadConfig, metadata={"help": "settings of `head` mode"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "settings of `lora` mode"})
    save_model: bool = _help("save fine-tuned weights (safetensors / adapter / head) in the run directory",
                             default=True)
    gradient_checkpointing: bool = _help("recompute activations in the backward pass (less memory, ~30% slower; "
                                         "full and lora modes)", default=False)
    attn_implementation: Optional[str] = _help(
        "attention kernel passed to transformers: sdpa, eager, flash_attention_2 (needs the flash-attn package); "
        "null lets transformers choose", default=None)
    compile: bool = _help("torch.compile the model before training/inference (opt-in; pays off on long GPU runs)",
                          default=False)
    dtype: Literal["float32", "bfloat16", "float16"] = _help(
        "storage dtype of the frozen weights: bfloat16 halves memory (the usual choice for LoRA on a large GPU "
        "model); trainable weights (LoRA adapters, the head; every weight in full mode) always train from float32 "
        "master copies, computed under bf16 autocast. float32 is the CPU default. Autocast precision is "
        "runtime.mixed_precision",
        default="float32")


@dataclass
class MethodConfig:
    """Base of every transfer method's config; each method module subclasses it."""

    name: str = _help("transfer method from the registry (`w2s methods`)", default="naive")
    id: Optional[str] = _help("name of this entry in results and the run directory (default: `name`)",
                              default=None)
    loss: LossConfig = field(default_factory=LossConfig,
                             metadata={"help": "loss the strong student is trained with on this method's labels"})
    seeds: Optional[list[int]] = _help("run this method on these training seeds only (a subset of the recipe's "
                                       "`seeds`; e.g. an expensive method on one seed); default: all", default=None)

    @property
    def key(self) -> str:
        return self.id or self.name


@dataclass
class RuntimeConfig:
    mixed_precision: Optional[Literal["no", "bf16", "fp16"]] = _help(
        "autocast precision for training and inference; null takes it from `accelerate launch` / its config "
        "file (bf16 needs a GPU or CPU with bf16 support; fp16 needs a GPU)", default=None)
    trackers: list[str] = _help("experiment trackers to log training curves to (opt-in): tensorboard, wandb, "
                                "... (anything `accelerate` supports that is installed)", default_factory=list)
    tracker_dir: Optional[str] = _help("where file-based trackers write (default: <run dir>/trackers)",
                                       default=None)


@dataclass
class EvalConfig:
    bootstrap: int = _help("paired bootstrap resamples of the test split for confidence intervals",
                           default=1000)
    ci: float = _help("confidence level of the intervals", default=0.95)
    seed: int = _help("seed of the bootstrap resampling", default=0)


def _default_methods():
    from pipeline.methods import METHODS

    return [METHODS["naive"].Config()]


@dataclass
class SweepConfig:
    weak: list[ModelConfig] = _help(
        "weak models: aliases/paths or mappings like the `weak:` block; each entry inherits the `weak:` block's "
        "settings and overrides what it sets", default_factory=list)
    strong: list[ModelConfig] = _help("strong models, likewise inheriting the `strong:` block", default_factory=list)
    pairs: Literal["weak_le_strong", "all"] = _help(
        "which (weak, strong) pairs run: weak_le_strong = every pair whose weak model has at most as many "
        "parameters as the strong one (Burns et al.); all = every pair", default="weak_le_strong")

    @property
    def enabled(self) -> bool:
        return bool(self.weak or self.strong)


@dataclass
class Recipe:
    name: str = _help("run name: outputs go to <output_dir>/<name>/", default="run")
    output_dir: str = _help("parent folder of run directories", default="runs")
    seed: int = _help("training seed (model init, data order) when `seeds` is not set", default=0)
    seeds: Optional[list[int]] = _help(
        "several training seeds: weak, ceiling and every method run once per seed and results are pooled "
        "(mean, std, CI over seeds and test resampling); overrides `seed`", default=None)
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "dataset and split sizes"})
    weak: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the weak supervisor"})
    strong: ModelConfig = field(
        default_factory=lambda: ModelConfig(model="mpnet", mode="head"), metadata={"help": "the strong student"}
    )
    methods: list[MethodConfig] = field(
        default_factory=_default_methods, metadata={"help": "transfer methods, each `{name: ..., <options>}`"}
    )
    evaluate: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "evaluation statistics"})
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig,
                                   metadata={"help": "precision and experiment trackers (hardware: accelerate)"})
    theory: TheoryConfig = field(default_factory=TheoryConfig,
                                 metadata={"help": "synthetic theory sanity stage"})
    sweep: SweepConfig = field(default_factory=SweepConfig, metadata={
        "help": "weak x strong model sweep: every pair runs, sharing cached weak labels and ceilings"})

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]


# ----------------------------------------------------------------------------------------- loading


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {bool: "true/false", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _convert(tp, value, path: str, errors: list[str]):
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, MethodConfig):
        return _build_method(value, path, errors)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, errors)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path, errors)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            errors.append(f"{path}: must be one of {', '.join(map(repr, choices))}, got {value!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return value
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a {_type_name(tp)}, got {value!r}")
            return []
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 5e-5 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported config type {tp} at {path}")  # a schema bug, not a user error
    if not ok:
        errors.append(f"{path}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        return value
    return float(value) if tp is float else value


def _build(cls, data, path: str, errors: list[str]):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append(f"{path or 'recipe'}: expected a mapping of keys, got {data!r}")
        return cls()
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in known:
            hint = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            errors.append(f"{where}: unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                          + f"; allowed here: {', '.join(known)}")
            continue
        kwargs[key] = _convert(known[key].type, value, where, errors)
    return cls(**kwargs)


def _build_method(value, path: str, errors: list[str]) -> MethodConfig:
    from pipeline.methods import METHODS

    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        errors.append(f"{path}: a method entry needs a `name` (one of {', '.join(METHODS)}), got {value!r}")
        return MethodConfig()
    name = value["name"]
    if name not in METHODS:
        hint = difflib.get_close_matches(str(name), list(METHODS), n=1)
        errors.append(f"{path}.name: unknown transfer method {name!r}"
                      + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; known: {', '.join(METHODS)}")
        return MethodConfig(name=str(name))
    return _build(METHODS[name].Config, value, path, errors)


def parse_override(text: str) -> tuple[list[str], object]:
    """`data.n_test=300` -> (['data', 'n_test'], 300); the value is parsed as YAML."""
    if "=" not in text:
        raise UserError(f"override {text!r} is not of the form key.sub=value",
                        "write e.g. data.n_test=300 or weak.train.lr=1e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads 1e-4 as a string; numbers written that way are common in overrides.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"override {text!r} has an empty key part", "write e.g. data.n_test=300")
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"override {text!r}: {where} is not an index of a list of {len(node)}")
                node = node[int(part)]
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise UserError(f"override {text!r}: {last} is not an index of a list of {len(node)}")
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}", "check the path; shipped recipes are in recipes/")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.constructor.ConstructorError as e:
        raise UserError(f"{path}: YAML tag not allowed ({e.problem}{_mark(e)})",
                        "recipes are plain data: remove tags such as !!python/object") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: malformed YAML: {getattr(e, 'problem', e)}{_mark(e)}",
                        "check indentation and quoting near that line") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a mapping of keys, got {type(raw).__name__}")
    if is_accelerate_config(raw):
        raise UserError(f"{path} is an accelerate config, not a recipe",
                        f"use it as: accelerate launch --config_file {path} -m pipeline run RECIPE")
    return raw


def is_accelerate_config(raw) -> bool:
    return isinstance(raw, dict) and "compute_environment" in raw and "distributed_type" in raw


def _mark(e) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def validate_values(r: Recipe) -> list[str]:
    """Checks beyond types: ranges and combinations. Returns readable errors with dotted paths."""
    errors = []
    d = r.data
    if d.name is not None and d.path is not None:  # neither: a theory-only recipe (checked by `w2s run`)
        errors.append("data: set exactly one of data.name (a shipped dataset) or data.path (your own file)")
    if d.name is not None:
        from pipeline.data import DATASETS

        if d.name not in DATASETS:
            hint = difflib.get_close_matches(d.name, list(DATASETS), n=1)
            errors.append(f"data.name: unknown dataset {d.name!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                          + f"; shipped: {', '.join(DATASETS)}")
    for key in ("n_train_weak", "n_transfer", "n_test", "max_length"):
        if getattr(d, key) < 2:
            errors.append(f"data.{key}: must be at least 2, got {getattr(d, key)}")
    roles = [("weak", r.weak), ("strong", r.strong)]
    roles += [(f"sweep.{role}[{i}]", m) for role in ("weak", "strong") for i, m in enumerate(getattr(r.sweep, role))]
    for role, m in roles:
        t = m.train
        for key in ("batch_size", "grad_accum", "eval_batch_size"):
            if getattr(t, key) < 1:
                errors.append(f"{role}.train.{key}: must be at least 1, got {getattr(t, key)}")
        if t.epochs <= 0:
            errors.append(f"{role}.train.epochs: must be positive, got {t.epochs}")
        if t.lr <= 0:
            errors.append(f"{role}.train.lr: must be positive, got {t.lr}")
        if not 0 <= t.warmup_ratio < 1:
            errors.append(f"{role}.train.warmup_ratio: must be in [0, 1), got {t.warmup_ratio}")
        if m.head.cv_folds < 2:
            errors.append(f"{role}.head.cv_folds: must be at least 2, got {m.head.cv_folds}")
        if not m.head.l2_grid or any(x < 0 for x in m.head.l2_grid):
            errors.append(f"{role}.head.l2_grid: needs at least one non-negative value, got {m.head.l2_grid}")
        if m.lora.r < 1:
            errors.append(f"{role}.lora.r: must be at least 1, got {m.lora.r}")
        es = t.early_stopping
        if not 0 < es.val_fraction < 0.5:
            errors.append(f"{role}.train.early_stopping.val_fraction: must be in (0, 0.5), got {es.val_fraction}")
        if es.evals_per_epoch < 1 or es.patience < 0:
            errors.append(f"{role}.train.early_stopping: evals_per_epoch >= 1 and patience >= 0 needed, got "
                          f"{es.evals_per_epoch} and {es.patience}")
        if m.mode == "head" and m.head.solver == "newton" and es.enabled:
            errors.append(f"{role}.head.solver: newton has no training curve to stop early on; "
                          "use solver: adamw (or auto) with train.early_stopping")
        if m.head.epochs < 1 or m.head.batch_size < 1 or m.head.lr <= 0:
            errors.append(f"{role}.head: epochs, batch_size and lr must be positive")
    seeds = r.seed_list
    if len(set(seeds)) != len(seeds):
        errors.append(f"seeds: each seed once, got {r.seeds}")
    seen = set()
    strong_models = [r.strong] + list(r.sweep.strong)
    for i, m in enumerate(r.methods):
        if m.key in seen:
            errors.append(f"methods[{i}]: two entries are called {m.key!r}; give one an `id`")
        seen.add(m.key)
        if hasattr(m, "validate"):
            errors.extend(f"methods[{i}].{e}" for e in m.validate())
        errors.extend(f"methods[{i}].loss.{e}" for e in m.loss.validate())
        if m.seeds is not None and (not m.seeds or set(m.seeds) - set(seeds)):
            errors.append(f"methods[{i}].seeds: must be a non-empty subset of the recipe's seeds {seeds}, "
                          f"got {m.seeds}")
        if m.loss.name != "xent" and any(s.mode == "head" and s.head.solver == "newton" for s in strong_models):
            errors.append(f"methods[{i}].loss: {m.loss.name} needs an iterative solver, but strong.head.solver is "
                          "newton (plain cross-entropy only); set strong.head.solver: auto or adamw")
    if r.evaluate.bootstrap < 100:
        errors.append(f"evaluate.bootstrap: use at least 100 resamples, got {r.evaluate.bootstrap}")
    if not 0.5 < r.evaluate.ci < 1:
        errors.append(f"evaluate.ci: must be in (0.5, 1), got {r.evaluate.ci}")
    errors.extend(r.theory.validate())
    if not r.name or "/" in r.name or r.name.startswith("."):
        errors.append(f"name: must be a plain folder name, got {r.name!r}")
    return errors


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _expand_sweep(raw: dict) -> dict:
    """Sweep entries may be a bare model name and inherit the `weak:` / `strong:` block's settings."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict):
        return raw
    sweep = dict(sweep)
    for role in ("weak", "strong"):
        entries = sweep.get(role)
        if not isinstance(entries, list):
            continue
        base = raw.get(role) if isinstance(raw.get(role), dict) else {}
        sweep[role] = [_deep_merge(base, {"model": e} if isinstance(e, str) else e) if isinstance(e, (str, dict))
                       else e for e in entries]
    return {**raw, "sweep": sweep}


def load_recipe(path: Optional[Path], overrides: list[str] = ()) -> Recipe:
    """Read, override, type-check and validate a recipe; raise one UserError listing every problem."""
    raw = read_yaml(path) if path is not None else {}
    raw = _expand_sweep(apply_overrides(raw, list(overrides)))
    errors: list[str] = []
    recipe = _build(Recipe, raw, "", errors)
    if not errors:
        errors = validate_values(recipe)
    if errors:
        where = f"{path}" if path is not None else "recipe"
        raise UserError(f"{where}: {len(errors)} problem(s):\n  - " + "\n  - ".join(errors),
                        "`w2s keys` lists every recipe key with its type and meaning")
    return recipe


def to_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)


def describe(cls=Recipe, prefix: str = "", instance=None) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, help) for every recipe key: the source of `w2s keys`."""
    rows = []
    instance = cls() if instance is None else instance
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        help_text = f.metadata.get("help", "")
        if dataclasses.is_dataclass(f.type):
            rows.append((key, "mapping", "", help_text))
            rows.extend(describe(f.type, key + ".", getattr(instance, f.name)))
        else:
            default = getattr(instance, f.name)
            if isinstance(default, list) and default and isinstance(default[0], MethodConfig):
                default = [m.key for m in default]
            rows.append((key, _type_name(f.type), repr(default), help_text))
            if f.name == "methods" and cls is Recipe:
                from pipeline.methods import METHODS

                for name, module in METHODS.items():
                    rows += [(f"methods[name={name}].{k}", t, d, h) for k, t, d, h in describe(module.Config)
                             if k != "name"]
    return rows
