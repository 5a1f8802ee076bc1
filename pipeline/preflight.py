"""Checks that can fail on user input, made before anything is written or trained."""

import os
from pathlib import Path

from pipeline import data, models, tasks
from pipeline.errors import UserError
from pipeline.methods import METHODS


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def preflight(recipe) -> None:
    """Data, split sizes, model specs, method prerequisites and the output folder of a recipe."""
    if recipe.data.name is None and recipe.data.path is None:
        raise UserError("this recipe has no data: set data.name (a shipped dataset, `w2s data`) or data.path",
                        "a recipe with only a `theory:` block runs with `w2s theory RECIPE`")
    task = tasks.get(recipe.task)
    _, labels, _ = task.load(recipe.data)
    task.split(labels, data.split_sizes(recipe.data), recipe.data.seed)
    problems = [f"{role}.model: {p}" for role in ("weak", "strong")
                if (p := models.check_spec(getattr(recipe, role).model))]
    for i, m in enumerate(recipe.methods):
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
