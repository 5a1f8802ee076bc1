"""Weak stage: train the weak model on A's ground truth; its soft labels on B are the supervision,
its predictions on test are scored, its in-sample predictions on A are kept for methods that compare
against the weak supervisor there (selective's `weak_reference: in_sample`)."""

from pipeline import rundir, tasks
from pipeline.data import source_label
from pipeline.stages.base import Job, Stage, ood_accuracy, per_seed, write_scored
from pipeline.tasks.base import Fit


def run(job: Job) -> dict:
    r, out, inp = job.recipe, job.folder, job.inputs()
    task = tasks.of(r)
    gold = task.gold_targets(inp.labels("train_weak"))
    predict = dict.fromkeys(["transfer", *inp.scored(), "train_weak"])
    probs, info = task.fit_and_predict(Fit(r.weak, "train_weak", gold, "weak", out_dir=out), inp, predict)
    if job.is_main:
        task.save_labels(out / "labels", inp.examples("transfer"), probs["transfer"])
        write_scored(task, out, inp, probs, [*inp.scored(), "train_weak"])
    b_acc = task.accuracy(probs["transfer"], inp.labels("transfer"))
    test_acc = task.accuracy(probs["test"], inp.labels("test"))
    calibration = {}
    if r.task != "generation":  # how far its confidence is from its accuracy (B's gold: reporting only)
        from pipeline.metrics.calibration import ece

        calibration = {"transfer_label_ece": ece(probs["transfer"], inp.labels("transfer")),
                       "test_ece": ece(probs["test"], inp.labels("test"))}
    return {**info, "model": r.weak.model, "test_accuracy": test_acc, "transfer_label_accuracy": b_acc,
            **calibration,
            **ood_accuracy(task, inp, probs),
            **task.label_stats(probs["transfer"]),
            **({"trained_on": rundir.as_data(r.weak.data)} if r.weak.data else {}),
            "summary": f"{r.weak.model} ({r.weak.mode}{source_label(r.weak.data)}): test acc {test_acc:.3f}, "
                       f"labels on B acc {b_acc:.3f} (gold used for reporting only)"}


STAGE = Stage(name="weak", inputs=("data",), units=per_seed, key=lambda r, u: [rundir.as_data(r.weak)],
              folder=lambda run, unit: run.stage_dir("weak", unit.seed), run=run, runs_models=True)
