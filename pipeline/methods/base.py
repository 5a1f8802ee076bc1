"""What a transfer method sees and returns.

A method is a module with a `Config` (a `MethodConfig` subclass) and `build_labels(cfg, ctx) -> LabelSet`,
where `ctx` is a `MethodContext`: the splits, the weak model's outputs, the strong model's frozen
features and two callables (train the weak recipe on rows of A; load a causal model as a `Prompter`).
Nothing else of the run: a method can be unit-tested with a context built from arrays. Optional hooks:
`preflight(cfg, recipe)` (checks that need the whole recipe), `report_lines(key, entry, results)` and
`plots(key, entry, run_dir)` (its section of report.md, read from results.json).
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from pipeline.tasks.base import Split

__all__ = ["LabelSet", "MethodContext", "Split"]


@dataclass
class LabelSet:
    """What the strong model is trained on for split B: target distributions [n, 2] (a generation task: one
    answer per question) and diagnostics. Methods return probabilities; the transfer stage turns them
    one-hot when the method's `hard` is set."""

    targets: np.ndarray
    diagnostics: dict = field(default_factory=dict)


@dataclass
class MethodContext:
    """The inputs of one method on one training seed.

    Gold labels: A's (`splits['train_weak'].labels`) are the weak supervisor's own training data and may
    be used; B's and the test split's are for diagnostics only and must never shape the labels.
    """

    seed: int
    splits: dict[str, Split]
    weak_labels: np.ndarray  # the weak model's P(class) on B, [n, 2] (generation: its answers): the supervision
    weak_train_probs: np.ndarray  # its in-sample P(class) on A (it trained there)
    weak_test_probs: np.ndarray  # its P(class) on the test split (its predictions, no gold)
    strong: object  # the student's ModelConfig: model spec, head settings for probes
    features: Callable[[list[str]], dict[str, np.ndarray]]  # frozen strong-model features per split
    # fit_weak(train_rows, predict_rows, desc) -> P(class) [len(predict_rows), 2]: the weak recipe retrained
    # on A's gold labels of train_rows, predicting the other rows of A (cross-fitting)
    fit_weak: Callable[[np.ndarray, np.ndarray, str], np.ndarray]
    # prompter(model spec, template, verbalizers, batch_size=, max_tokens=, chat=) -> prompting.Prompter
    prompter: Callable[..., object]
    default_prompt: tuple[Optional[str], Optional[list[str]]] = (None, None)  # the dataset's template, verbalizers
    task: str = "classification"  # the recipe's task kind (a preference pair's texts are (A, B) tuples)
    # generation task: the configured task (prompt format, demonstrations, checker: `tasks.generation`), and
    # generator(model spec) -> answer(prompts, desc) -> greedy answers, the model loaded once
    gen: object = None
    generator: Optional[Callable[[str], Callable[[list[str], str], list[str]]]] = None
    # fit_teacher(model config, desc) -> P(class) on B [n, 2]: another weak model trained on A's gold (ensemble)
    fit_teacher: Optional[Callable[[object, str], np.ndarray]] = None
    cache: dict = field(default_factory=dict)  # results shared within one method's run (crossfit_weak_on_a)

    def texts(self, split: str) -> list[str]:
        return self.splits[split].texts

    def labels(self, split: str) -> np.ndarray:
        return self.splits[split].labels


def crossfit_weak_on_a(ctx: MethodContext, folds: int, who: str = "selective") -> np.ndarray:
    """Out-of-sample weak outputs on A (P(class) [n, 2]; generation: answers): the weak recipe retrained on
    the other folds of A, per fold. Computed once per context and fold count (weak-label calibration and
    selective's reference share it)."""
    if ("crossfit", folds) in ctx.cache:
        return ctx.cache["crossfit", folds]
    n = len(ctx.labels("train_weak"))
    out = None
    parts = np.array_split(np.random.default_rng(ctx.seed + 2).permutation(n), folds)
    for k, held in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        got = np.asarray(ctx.fit_weak(fit, held, f"{who}: weak fold {k + 1}/{folds}"))
        if out is None:
            out = (np.empty(n, dtype=object) if got.dtype == object
                   else np.zeros((n,) + got.shape[1:], dtype=np.float32))
        out[held] = got
    ctx.cache["crossfit", folds] = out
    return out
