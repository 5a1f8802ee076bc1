"""Every check that can be made before anything is written or trained, all problems reported together.

`w2s validate`, `w2s run` and `w2s run --dry-run` call `preflight`: the recipe's data (file, columns,
labels, split sizes), output folder, model specs (a hub id without a reachable hub or a local copy fails
here, in seconds), each method's prerequisites (prompt templates, causal refiners) and, when the
process count is known, batch sizes against it. Fast: no model is loaded and torch is not imported.
"""

import tempfile
from pathlib import Path

from pipeline import data, models, tasks
from pipeline.errors import UserError
from pipeline.methods import METHODS


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _roles(recipe) -> list[tuple[str, object]]:
    roles = [("weak", recipe.weak), ("strong", recipe.strong)]
    return roles + [(f"sweep.{r}[{i}]", m) for r in ("weak", "strong") for i, m in enumerate(getattr(recipe.sweep, r))]


def batch_problems(recipe, num_processes: int | None) -> list[str]:
    """Global batches that do not divide over the processes (nothing to check when the count is unknown)."""
    out = []
    for role, m in _roles(recipe) if num_processes else []:
        if m.mode != "head" and m.train.batch_size % num_processes:
            b = m.train.batch_size
            out.append(f"{role}.train.batch_size: {b} is the global batch and must divide evenly over "
                       f"{num_processes} processes; use a multiple of {num_processes}, e.g. "
                       f"{b + num_processes - b % num_processes}")
    return out


def problems(recipe, num_processes: int | None = None) -> list[str]:
    """What stops this recipe from running, one readable line each (empty: it can run)."""
    out = []
    if recipe.data.name is None and recipe.data.path is None:
        out.append("data: this recipe has no data: set data.name (a shipped dataset, `w2s data list`) or data.path "
                   "(a recipe with only a `theory:` block runs with `w2s theory RECIPE`)")
    else:
        task = tasks.of(recipe)
        try:
            source = task.load(recipe.data)
            parts = task.split(source, recipe.data, recipe.data.seed)
        except UserError as e:
            out.append(f"data: {e}")
            out += _size_problems(recipe.data)
        else:
            out += _source_problems(recipe, source, parts)
    out += _output_problems(Path(recipe.output_dir) / recipe.name)
    for role, m in _roles(recipe):
        p = models.check_spec(m.model) or models.hub_problem(m.model)
        if p:
            out.append(f"{role}.model: {p}")
        elif recipe.task == "generation" and models.kind(m.model) == "encoder":
            out.append(f"{role}.model: {m.model!r} is an encoder; a generation task fine-tunes a causal language "
                       "model to write answers (e.g. smollm2-135m, gemma3-270m, or a hub causal LM)")
    out += batch_problems(recipe, num_processes)
    for i, m in enumerate(recipe.methods):
        check = getattr(METHODS[m.name], "preflight", None)
        if check and (p := check(m, recipe)):
            out.append(f"methods[{i}] ({m.key}): {p}")
    return out


def _source_problems(recipe, source, parts: dict) -> list[str]:
    """Weak models' own source data (weak.data, a teacher's data): readable, same labels, big enough."""
    out = []
    data.weak_source_splits(recipe, source, parts, recipe.data.seed, errors=out)
    if len({repr(m.data) for m in recipe.sweep.weak}) > 1:
        out.append("sweep.weak: the entries train on different `data:` sources, but a sweep's pairs share one "
                   "split; give every entry the same source (or none), or run each source as its own recipe")
    return out


def _size_problems(cfg) -> list[str]:
    """When the data loaded only partly (e.g. a wrong column): are the splits larger than the file?"""
    try:
        pools = data.pool_rows(cfg)
    except UserError:
        return []  # the file itself is the problem, already reported
    if "all" not in pools:
        return []  # the data's own splits: the n_* sizes are caps
    rows = pools["all"]
    need = sum(data.split_sizes(cfg).values())
    if need <= rows:
        return []
    return [f"data.n_train_weak + data.n_transfer + data.n_test = {need}, but the data has {rows} rows; lower them"]


def _output_problems(out: Path) -> list[str]:
    if out.exists() and not out.is_dir():
        return [f"output_dir: {out} is a file, not a folder; set output_dir or name to somewhere else"]
    base = _nearest_existing(out)
    if not base.is_dir():
        return [f"output_dir: {out} cannot be created ({base} is a file); set output_dir to a folder, e.g. runs"]
    try:  # a real probe: permission bits do not tell for root, read-only mounts or /proc
        tempfile.TemporaryDirectory(prefix=".w2s-probe-", dir=base).cleanup()
    except OSError as e:
        return [f"output_dir: {out} cannot be created or written ({base}: {e.strerror or e}); set output_dir to a "
                "folder you can write to, e.g. output_dir=runs"]
    return []


def preflight(recipe, num_processes: int | None = None) -> None:
    """Raise one UserError naming every problem `problems` finds."""
    found = problems(recipe, num_processes)
    if found:
        raise UserError(f"cannot run this recipe, {len(found)} problem(s):\n  - " + "\n  - ".join(found))
