"""Task kinds: what an example is, how a model is trained on and scores it, and the metric.

A task is a module exposing `TASK`, an object with the interface of `classification.Classification`
(load and split the data, gold targets, train-and-predict for a model spec, harden, accuracy,
prediction files, evaluation). The stages call only that interface, so a new task kind (preference
pairs, generation) is one new module plus one line here; recipes pick it with `task:`.
"""

import importlib

# name -> module; imported on first use so that loading a recipe does not import every task's stack
TASKS = {"classification": "pipeline.tasks.classification", "preference": "pipeline.tasks.preference",
         "generation": "pipeline.tasks.generation"}


def get(name: str):
    """The task object registered as `name` (a recipe's `task:` is validated against TASKS first)."""
    return importlib.import_module(TASKS[name]).TASK


def of(recipe):
    """The recipe's task, configured by it (a generation task's prompt format, checker and decoding)."""
    return get(recipe.task).configure(recipe)
