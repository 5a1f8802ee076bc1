"""Recipe loading: strict YAML, dotted `key=value` overrides, type checks and value checks.

A recipe is plain data. Loading reports *every* problem at once (dotted path, what was expected,
a did-you-mean for misspelled keys), so a user fixes a recipe in one pass. Method and loss entries are
built by name from their registries, so each gets exactly its own keys.
"""

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Literal, Optional

import yaml

from pipeline import data, tasks
from pipeline.config.losses import LOSS_CONFIGS, LossConfig
from pipeline.config.schema import FINETUNE_ONLY, MethodConfig, Recipe
from pipeline.data import DATASETS
from pipeline.errors import UserError
from pipeline.methods import METHODS
from pipeline.suite import SUITE


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
        return _build_named(METHODS, "transfer method", MethodConfig, value, path, errors)
    if isinstance(tp, type) and issubclass(tp, LossConfig):
        return _build_named(LOSS_CONFIGS, "loss", LossConfig, value, path, errors)
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
    if tp is str and path.endswith("positive_label") and isinstance(value, (bool, int, float)):
        value = str(value)  # a label value written as YAML 5 / true: compared with the column's values as text
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
        quote = " (quote it: YAML reads {a} as a mapping)" if tp is str and isinstance(value, dict) else ""
        errors.append(f"{path}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__}){quote}")
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
        if isinstance(errors, Problems):
            errors.given.add(where)
        kwargs[key] = _convert(known[key].type, value, where, errors)
    return cls(**kwargs)


def _build_named(registry: dict, what: str, base: type, value, path: str, errors: list[str]):
    """A method or loss entry: `name` picks the config class from the registry; then its own keys only."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        errors.append(f"{path}: a {what} entry needs a `name` (one of {', '.join(registry)}), got {value!r}")
        return base()
    name = value["name"]
    if name not in registry:
        hint = difflib.get_close_matches(str(name), list(registry), n=1)
        errors.append(f"{path}.name: unknown {what} {name!r}"
                      + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; known: {', '.join(registry)}")
        return base(name=str(name))
    cls = registry[name]
    return _build(getattr(cls, "Config", cls), value, path, errors)


class Problems(list):
    """Errors found while building a recipe, plus the dotted keys the recipe set explicitly (`given`)."""

    def __init__(self):
        super().__init__()
        self.given: set[str] = set()


def parse_override(text: str) -> tuple[list[str], object]:
    """`data.n_test=300` -> (['data', 'n_test'], 300); the value is parsed as YAML. A list item is
    `methods.1.hard=true` or, as in Python, `methods[1].hard=true`."""
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
    parts = re.sub(r"\[(\d+)\]", r".\1", key.strip()).split(".")
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


class DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a mapping setting one key twice."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise DuplicateKey(f"key {key!r} is set twice (lines {seen[key] + 1} and {line})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}", "check the path; shipped recipes are in recipes/")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except DuplicateKey as e:
        raise UserError(f"{path}: {e}", "keep one of them (YAML would silently use the last)") from None
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


def _ignored_by_mode(role: str, m, given: set[str]) -> list[str]:
    """Keys the recipe set that the model's mode never reads: an error, since they look like they act."""
    errors = []
    if m.mode == "head":
        for key in FINETUNE_ONLY:
            if f"{role}.train.{key}" in given:
                errors.append(f"{role}.train.{key}: does nothing in head mode (the linear head trains with "
                              f"{role}.head.*: solver, lr, epochs, batch_size); remove it, or set {role}.mode: full "
                              "or lora to fine-tune")
    if m.mode != "lora":
        errors += [f"{role}.lora.{k}: does nothing in {m.mode} mode; remove it, or set {role}.mode: lora"
                   for k in ("r", "alpha", "dropout", "target_modules") if f"{role}.lora.{k}" in given]
    return errors


def _generation_errors(r: Recipe, roles: list) -> list[str]:
    """What a generation recipe cannot do: head mode, early stopping, losses other than the SFT loss."""
    from pipeline.answers import CHECKERS

    g, errors = r.generation, []
    for role, m in roles:
        if m.mode == "head":
            errors.append(f"{role}.mode: head trains a linear classifier on frozen features; a generation task "
                          "fine-tunes the causal LM itself: use full or lora")
        if m.train.early_stopping.enabled:
            errors.append(f"{role}.train.early_stopping: not available for the generation task (no held-out "
                          "answer score during training yet); set enabled: false and choose train.epochs")
    for i, m in enumerate(r.methods):
        if m.loss.name != "xent":
            errors.append(f"methods[{i}].loss: {m.loss.name} is a classification loss; a generation task trains "
                          "on answer tokens with the language-model loss (remove `loss`)")
    if g.checker is not None and g.checker not in CHECKERS:
        hint = difflib.get_close_matches(g.checker, list(CHECKERS), n=1)
        errors.append(f"generation.checker: unknown checker {g.checker!r}" + (f" (did you mean '{hint[0]}'?)" if hint
                      else "") + f"; known: {', '.join(CHECKERS)}")
    if "{prompt}" not in g.template:
        errors.append(f"generation.template: {g.template!r} has no {{prompt}} placeholder for the question "
                      "(e.g. \"Question: {prompt}\\nAnswer:\")")
    for key in ("max_new_tokens", "batch_size"):
        if getattr(g, key) < 1:
            errors.append(f"generation.{key}: must be at least 1, got {getattr(g, key)}")
    return errors


def validate_values(r: Recipe, given: set[str] = frozenset()) -> list[str]:
    """Checks beyond types: ranges and combinations. Returns readable errors with dotted paths.

    `given`: the dotted keys the recipe set (to flag keys the chosen mode ignores)."""
    errors = []
    if r.task not in tasks.TASKS:
        hint = difflib.get_close_matches(r.task, list(tasks.TASKS), n=1)
        errors.append(f"task: unknown task kind {r.task!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                      + f"; known: {', '.join(tasks.TASKS)}")
    d = r.data
    if d.name is not None and d.path is not None and d.name not in SUITE:  # neither: a theory-only recipe
        errors.append("data: set exactly one of data.name (a shipped dataset) or data.path (your own file); "
                      "name and path together are for a hub dataset's local copy")
    if d.name is not None and not data.known(d.name):
        names = [*DATASETS, *SUITE]
        hint = difflib.get_close_matches(d.name, names, n=1)
        errors.append(f"data.name: unknown dataset {d.name!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                      + f"; known: {', '.join(names)} (`w2s data list`)")
    elif d.name is not None and r.task in tasks.TASKS and data.task_of(d.name) != r.task:
        fitting = [n for n in [*DATASETS, *SUITE] if data.task_of(n) == r.task]
        errors.append(f"data.name: {d.name!r} is a {data.task_of(d.name)} dataset but the recipe's task is {r.task!r}; "
                      f"set task: {data.task_of(d.name)}, or use a {r.task} dataset ({', '.join(fitting)})")
    for i, ds in enumerate(r.sweep.datasets):
        if not data.known(ds):
            hint = difflib.get_close_matches(ds, [*DATASETS, *SUITE], n=1)
            errors.append(f"sweep.datasets[{i}]: unknown dataset {ds!r}" + (f" (did you mean '{hint[0]}'?)" if hint
                          else "") + " (`w2s data list`)")
        elif r.task in tasks.TASKS and data.task_of(ds) != r.task:
            errors.append(f"sweep.datasets[{i}]: {ds!r} is a {data.task_of(ds)} dataset but the recipe's task is "
                          f"{r.task!r}; a suite runs datasets of one task kind")
    if len(set(r.sweep.datasets)) != len(r.sweep.datasets):
        errors.append(f"sweep.datasets: each dataset once, got {r.sweep.datasets}")
    ood = d.test_ood
    if ood is not None:
        if ood.name is not None and ood.path is not None and ood.name not in SUITE:
            errors.append("data.test_ood: set one of name or path")
        if ood.name is not None and not data.known(ood.name):
            errors.append(f"data.test_ood.name: unknown dataset {ood.name!r} (`w2s data list`)")
        elif ood.name is not None and r.task in tasks.TASKS and data.task_of(ood.name) != r.task:
            errors.append(f"data.test_ood.name: {ood.name!r} is a {data.task_of(ood.name)} dataset; the shifted "
                          f"test set of a {r.task} recipe must be a {r.task} dataset")
        if ood.name is None and ood.path is None and not ood.where:
            errors.append("data.test_ood: needs a name, a path or a `where` filter (e.g. where: domain=books)")
        if ood.n is not None and ood.n < 2:
            errors.append(f"data.test_ood.n: must be at least 2, got {ood.n}")
    for key, text in (("data.where", d.where), ("data.test_ood.where", ood.where if ood else None)):
        if isinstance(text, str):
            try:
                data.check_where(text, key)
            except UserError as e:
                errors.append(e.message + f" (e.g. {key}=domain=books)")
    if isinstance(d.template, str):
        try:
            data.check_template(d.template)
        except UserError as e:
            errors.append(e.message)
    if d.template is not None and r.task == "preference":
        errors.append("data.template: builds classification inputs; a preference task reads data.prompt_field, "
                      "chosen_field and rejected_field")
    for i, m in enumerate(r.methods):
        kinds = getattr(METHODS.get(m.name), "TASKS", tuple(tasks.TASKS))
        if r.task in tasks.TASKS and r.task not in kinds:
            errors.append(f"methods[{i}] ({m.key}): {m.name} does not support task {r.task!r} "
                          f"(it supports: {', '.join(kinds)}); remove it from methods for this task")
    keys = [m.key for m in r.methods]
    for k in dict.fromkeys(k for k in keys if keys.count(k) > 1):
        errors.append(f"methods: {k!r} is listed twice; give one of them its own `id:` (e.g. {{name: {k}, id: "
                      f"{k}_2, ...}}): results and folders are named by it")
    if r.seeds is not None and not r.seeds:
        errors.append("seeds: an empty list runs nothing; list at least one training seed (e.g. seeds: [0]) or "
                      "remove the key (then `seed` is used)")
    elif r.seeds and len(set(r.seeds)) != len(r.seeds):
        errors.append(f"seeds: {r.seeds} repeats a seed; list each once")
    for key in ("n_train_weak", "n_transfer", "n_test", "max_length"):
        if getattr(d, key) < 2:
            errors.append(f"data.{key}: must be at least 2, got {getattr(d, key)}")
    roles = [("weak", r.weak), ("strong", r.strong)]
    roles += [(f"sweep.{role}[{i}]", m) for role in ("weak", "strong") for i, m in enumerate(getattr(r.sweep, role))]
    for role, m in roles:
        if not getattr(r.sweep, role, None):  # a `weak:` / `strong:` block under a sweep list is only inherited
            errors += _ignored_by_mode(role, m, given)
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
        if m.name not in METHODS:
            continue  # reported while building
        errors.extend(f"methods[{i}].loss.{e}" for e in m.loss.validate())
        if m.calibrate != "none" and r.task == "generation":
            errors.append(f"methods[{i}].calibrate: a generation task's weak labels are answers, not probabilities; "
                          "remove `calibrate`")
        if m.calibrate_folds < 2:
            errors.append(f"methods[{i}].calibrate_folds: must be at least 2, got {m.calibrate_folds}")
        if m.seeds is not None and (not m.seeds or set(m.seeds) - set(seeds)):
            errors.append(f"methods[{i}].seeds: must be a non-empty subset of the recipe's seeds {seeds}, "
                          f"got {m.seeds}")
        if m.loss.name != "xent" and any(s.mode == "head" and s.head.solver == "newton" for s in strong_models):
            errors.append(f"methods[{i}].loss: {m.loss.name} needs an iterative solver, but strong.head.solver is "
                          "newton (plain cross-entropy only); set strong.head.solver: auto or adamw")
    if r.task == "generation":
        errors += _generation_errors(r, roles)
    if r.evaluate.baseline is not None and r.evaluate.baseline not in seen:
        hint = difflib.get_close_matches(r.evaluate.baseline, list(seen), n=1)
        errors.append(f"evaluate.baseline: {r.evaluate.baseline!r} is not a method of this recipe"
                      + (f" (did you mean '{hint[0]}'?)" if hint else "")
                      + f"; its methods: {', '.join(sorted(seen)) or 'none'}")
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


def _sweep_entry_keys(raw: dict) -> set[str]:
    """Dotted keys each sweep entry sets itself (before it inherits the role block's)."""
    keys = set()

    def walk(node, path):
        for k, v in node.items():
            keys.add(f"{path}.{k}")
            if isinstance(v, dict):
                walk(v, f"{path}.{k}")
    sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else {}
    for role in ("weak", "strong"):
        entries = sweep.get(role)
        for i, e in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(e, dict):
                walk(e, f"sweep.{role}[{i}]")
    return keys


def load_recipe(path: Optional[Path], overrides: list[str] = ()) -> Recipe:
    """Read, override, type-check and validate a recipe; raise one UserError listing every problem."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, list(overrides))
    own = _sweep_entry_keys(raw)
    raw = _expand_sweep(raw)
    errors = Problems()
    recipe = _build(Recipe, raw, "", errors)
    if not errors:
        # a sweep entry's inherited keys were set on the role block, not on the entry
        given = {k for k in errors.given if not k.startswith("sweep.") or k in own}
        errors = validate_values(recipe, given)
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
                rows += _describe_registry("methods[]", MethodConfig, {n: m.Config for n, m in METHODS.items()})
    if cls is Recipe:
        rows += _describe_registry("loss", LossConfig, LOSS_CONFIGS)
    return rows


def _describe_registry(prefix: str, base: type, classes: dict) -> list[tuple[str, str, str, str]]:
    """Keys every entry shares (`prefix.key`) once, then each entry's own (`prefix[name=X].key`)."""
    shared = {f.name for f in dataclasses.fields(base)}
    rows = [(f"{prefix}.{k}", t, d, h) for k, t, d, h in describe(base) if "." not in k]
    for name, cls in classes.items():
        rows += [(f"{prefix.removesuffix('[]')}[name={name}].{k}", t, d, h) for k, t, d, h in describe(cls)
                 if k.split(".")[0] not in shared]
    return rows


def _leaves(d, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


# what a run directory's results are of: a recipe that differs here is another experiment
IDENTITY = ("task", "data.")


def identity_changes(old: dict, new: dict) -> list[str]:
    """The keys, among the task and the data block, whose values differ between two recipes (as `to_dict`
    writes them): a run directory made by `old` holds another experiment's results than `new` would."""
    a, b = _leaves(old), _leaves(new)
    keys = sorted(k for k in a.keys() | b.keys() if k == "task" or k.startswith("data."))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
