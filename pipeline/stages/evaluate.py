"""Evaluate stage: accuracy, AUROC and PGR of every model on the test split with bootstrap intervals,
pooled over the seeds (one seed gives the plain paired bootstrap)."""

import numpy as np

from pipeline import rundir, tasks
from pipeline.stages.base import Job, Stage, once


def _per_seed(r, run_dir, task, split: str) -> dict:
    """seed -> (gold labels, {model: P(class 1)}) on one scored split."""
    per_seed = {}
    for seed in r.seed_list:
        sources = {"weak": run_dir.stage_dir("weak", seed), "ceiling": run_dir.stage_dir("ceiling", seed)}
        sources.update({m.key: run_dir.stage_dir("transfer", seed, m.key) for m in r.methods
                        if m.seeds is None or seed in m.seeds})
        probs, y = {}, None
        for name, d in sources.items():
            labels, p = task.read_predictions(d / rundir.predictions_file(split))
            if y is not None and not np.array_equal(labels, y):
                raise RuntimeError(f"seed {seed}: {split} labels of {name} differ from the weak model's: "
                                   "run directory is inconsistent")
            y, probs[name] = labels, p
        per_seed[seed] = (y, probs)
    return per_seed


def baseline(r) -> str | None:
    """The method every other one is compared with, paired: `evaluate.baseline`, else naive when it ran."""
    keys = [m.key for m in r.methods]
    return r.evaluate.baseline or ("naive" if "naive" in keys else None)


def _summary(result: dict, seeds: int, what: str) -> str:
    parts = [f"{k} {v['accuracy']['value']:.3f}" for k, v in result["models"].items()]
    pgrs = [f"{k} {v['accuracy']['value']:.2f}" if v["accuracy"]["value"] is not None else f"{k} undefined"
            for k, v in result["pgr"].items()]
    over = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    return f"{what} acc{over}: " + ", ".join(parts) + " | PGR(acc): " + ", ".join(pgrs)


def run(job: Job) -> dict:
    r, run_dir = job.recipe, job.run
    task = tasks.of(r)
    shared = not r.data.vary_split
    base = baseline(r)
    result = task.evaluate(_per_seed(r, run_dir, task, "test"), r.evaluate, shared_test=shared, baseline=base)
    result["summary"] = _summary(result, len(r.seed_list), "test")
    if r.data.test_ood is not None:
        # the shifted test set: its own accuracy, AUROC and PGR (weak and ceiling scored there too)
        ood = task.evaluate(_per_seed(r, run_dir, task, "test_ood"), r.evaluate, shared_test=shared, baseline=base)
        result["test_ood"] = ood
        result["summary"] += " || " + _summary(ood, len(r.seed_list), "shifted test")
    return result


STAGE = Stage(name="evaluate", inputs=("weak", "ceiling", "transfer"), units=once,
              key=lambda r, u: [rundir.as_data(r.evaluate), [(m.key, m.seeds) for m in r.methods]],
              folder=lambda run, unit: run.stage_dir("evaluate"), run=run)
