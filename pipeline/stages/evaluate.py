"""Evaluate stage: accuracy, AUROC and PGR of every model on the test split with bootstrap intervals,
pooled over the seeds (one seed gives the plain paired bootstrap)."""

import numpy as np

from pipeline import rundir, tasks
from pipeline.stages.base import Job, Stage, once


def run(job: Job) -> dict:
    r, run_dir = job.recipe, job.run
    task = tasks.get(r.task)
    per_seed = {}
    for seed in r.seed_list:
        sources = {"weak": run_dir.stage_dir("weak", seed), "ceiling": run_dir.stage_dir("ceiling", seed)}
        sources.update({m.key: run_dir.stage_dir("transfer", seed, m.key) for m in r.methods
                        if m.seeds is None or seed in m.seeds})
        probs, y = {}, None
        for name, d in sources.items():
            labels, p = task.read_predictions(d / "predictions.jsonl")
            if y is not None and not np.array_equal(labels, y):
                raise RuntimeError(f"seed {seed}: test labels of {name} differ from the weak model's: "
                                   "run directory is inconsistent")
            y, probs[name] = labels, p
        per_seed[seed] = (y, probs)
    result = task.evaluate(per_seed, r.evaluate, shared_test=not r.data.vary_split)
    parts = [f"{k} {v['accuracy']['value']:.3f}" for k, v in result["models"].items()]
    pgrs = [f"{k} {v['accuracy']['value']:.2f}" if v["accuracy"]["value"] is not None else f"{k} undefined"
            for k, v in result["pgr"].items()]
    over = f" (mean of {len(per_seed)} seeds)" if len(per_seed) > 1 else ""
    result["summary"] = f"test acc{over}: " + ", ".join(parts) + " | PGR(acc): " + ", ".join(pgrs)
    return result


STAGE = Stage(name="evaluate", inputs=("weak", "ceiling", "transfer"), units=once,
              key=lambda r, u: [rundir.as_data(r.evaluate), [(m.key, m.seeds) for m in r.methods]],
              folder=lambda run, unit: run.stage_dir("evaluate"), run=run)
