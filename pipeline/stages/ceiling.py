"""Ceiling stage: train the strong model on B's ground truth, the upper reference of PGR."""

from pipeline import rundir, tasks
from pipeline.stages.base import Job, Stage, ood_accuracy, per_seed, write_scored
from pipeline.tasks.base import Fit


def run(job: Job) -> dict:
    r, out, inp = job.recipe, job.folder, job.inputs()
    task = tasks.of(r)
    gold = task.gold_targets(inp.labels("transfer"))
    probs, info = task.fit_and_predict(Fit(r.strong, "transfer", gold, "ceiling", out_dir=out), inp,
                                       dict.fromkeys(inp.scored()))
    if job.is_main:
        write_scored(task, out, inp, probs, inp.scored())
    acc = task.accuracy(probs["test"], inp.labels("test"))
    return {**info, "model": r.strong.model, "test_accuracy": acc, **ood_accuracy(task, inp, probs),
            "summary": f"{r.strong.model} ({r.strong.mode}) on gold B: test acc {acc:.3f}"}


STAGE = Stage(name="ceiling", inputs=("data",), units=per_seed, key=lambda r, u: [rundir.as_data(r.strong)],
              folder=lambda run, unit: run.stage_dir("ceiling", unit.seed), run=run, runs_models=True)
