"""Transfer stage, once per method and seed: the method builds labels for B from the weak model's
(and whatever else its `MethodContext` offers), `hard` turns them one-hot, and the strong model is
trained on them with the method's loss."""

import numpy as np

from pipeline import models, rundir, tasks
from pipeline.data import dataset_prompt, source_split
from pipeline.errors import UserError
from pipeline.methods import METHODS
from pipeline.methods.base import MethodContext, crossfit_weak_on_a
from pipeline.stages.base import (
    Job,
    SeedInputs,
    Stage,
    Unit,
    method_of,
    ood_accuracy,
    write_scored,
)
from pipeline.tasks.base import Fit

SPLITS = ("train_weak", "transfer", "test")


def units(recipe) -> list[Unit]:
    return [Unit(seed=s, method=m.key) for s in recipe.seed_list for m in recipe.methods
            if m.seeds is None or s in m.seeds]


def method_context(job: Job, inp: SeedInputs, task) -> MethodContext:
    """What a method sees of the run: splits, weak outputs, strong features, two callables."""
    r = job.recipe

    def fit_weak(train_rows, predict_rows, desc):
        gold = inp.labels("train_weak")
        fit = Fit(r.weak, "train_weak", task.gold_targets(gold[train_rows]), desc, rows=train_rows)
        return task.fit_and_predict(fit, inp, {"train_weak": predict_rows})[0]["train_weak"]

    def fit_teacher(model_cfg, desc):
        """Another weak model trained on gold: A's, or its own source data's split (a teacher's `data:`)."""
        split = source_split(model_cfg.data) if getattr(model_cfg, "data", None) else "train_weak"
        fit = Fit(model_cfg, split, task.gold_targets(inp.labels(split)), desc)
        return task.fit_and_predict(fit, inp, {"transfer": None})[0]["transfer"]

    def causal(spec, need):
        """(model, tokenizer) of a causal model spec (the strong model's dtype and attention settings when it
        is the strong model), or a UserError saying what `need`s one."""
        path = models.resolve(spec)
        if not models.is_causal(path):
            raise UserError(f"{spec!r} is not a causal language model; {need} needs one",
                            "use a causal strong model (or set the method's `refiner` to one)")
        return models.load_causal_lm(path, r.strong if spec == r.strong.model else None), models.load_tokenizer(path)

    def prompter(spec, template, verbalizers, **batching):
        from pipeline.prompting import Prompter  # torch: only where a model runs

        model, tokenizer = causal(spec, "prompting")
        models.verbalizer_problem(spec, verbalizers, tokenizer)  # the verdict for the next run's preflight
        return Prompter(model, tokenizer, template, verbalizers, job.accelerator, **batching)

    def generator(spec):
        model, tokenizer = causal(spec, "generating answers")
        return lambda prompts, desc: task.generate(model, tokenizer, prompts, job.accelerator, desc=desc)

    return MethodContext(
        seed=inp.seed, splits={s: inp.examples(s) for s in SPLITS},
        weak_labels=inp.weak_soft_labels(), weak_train_probs=inp.weak_train_probs(),
        weak_test_probs=inp.weak_test_probs(), strong=r.strong,
        features=lambda splits: inp.features(r.strong, splits), fit_weak=fit_weak, prompter=prompter,
        default_prompt=dataset_prompt(r.data.name), task=r.task,
        gen=task if r.task == "generation" else None, generator=generator, fit_teacher=fit_teacher)


def calibrated(ctx: MethodContext, m) -> dict:
    """`calibrate: temperature`: the weak labels on B (the context's, in place) temperature-scaled by the T
    that fits the weak model's out-of-sample outputs on A to A's gold; what was done, for the report."""
    from pipeline.metrics.calibration import ece, fit_temperature, temper

    oos = crossfit_weak_on_a(ctx, m.calibrate_folds, "calibrate")
    gold_a = ctx.labels("train_weak")
    t = fit_temperature(oos, gold_a)
    before, ctx.weak_labels = ctx.weak_labels, temper(ctx.weak_labels, t)
    gold_b = ctx.labels("transfer")  # reporting only
    return {"temperature": t, "folds": m.calibrate_folds, "ece_A_out_of_sample_before": ece(oos, gold_a),
            "ece_A_out_of_sample_after": ece(temper(oos, t), gold_a), "ece_B_before": ece(before, gold_b),
            "ece_B_after": ece(ctx.weak_labels, gold_b)}


def student_checks(task, targets: np.ndarray, probs: dict) -> dict:
    """Is the student degenerate? Its agreement with its own training labels on B, its class balance on
    test against its labels', and warnings: a student that ignores (or inverts) its labels, or predicts
    one class, is not a weak-to-strong result (measured: aux_conf on barely confident labels collapses)."""
    agree = float((probs["transfer"].argmax(1) == targets.argmax(1)).mean())
    share, label_share = float(probs["test"].argmax(1).mean()), float(targets.argmax(1).mean())
    warnings = []
    if agree < 0.65:
        warnings.append(f"the student agrees with its own training labels on only {agree:.0%} of B "
                        f"({'worse than' if agree < 0.5 else 'close to'} chance): it did not learn them")
    if min(share, 1 - share) < 0.05 and 0.2 <= label_share <= 0.8:
        warnings.append(f"the student predicts class {int(share > 0.5)} for {max(share, 1 - share):.0%} of the test "
                        f"set while its labels are {label_share:.0%} class 1: collapsed to one class")
    return {"agreement_with_labels_B": agree, "test_positive_share": share, "label_positive_share": label_share,
            "warnings": warnings}


def run(job: Job) -> dict:
    r, out, m, inp = job.recipe, job.folder, job.method, job.inputs()
    task = tasks.of(r)
    ctx = method_context(job, inp, task)
    calibration = calibrated(ctx, m) if m.calibrate == "temperature" else None
    labels = METHODS[m.name].build_labels(m, ctx)
    targets = task.harden(labels.targets) if m.hard or r.task == "generation" else np.asarray(labels.targets,
                                                                                               dtype=np.float32)
    gold = inp.labels("transfer")
    label_acc = task.accuracy(targets, gold)  # diagnostics only: B's gold never trains the student
    if job.is_main:
        task.save_labels(out / "labels", inp.examples("transfer"), targets)
    fit = Fit(r.strong, "transfer", targets, f"transfer/{m.key}", loss=m.loss, out_dir=out)
    generative = r.task == "generation"
    predict = dict.fromkeys(inp.scored() + ([] if generative else ["transfer"]))  # B: the degeneracy checks
    probs, info = task.fit_and_predict(fit, inp, predict)
    if job.is_main:
        write_scored(task, out, inp, probs, inp.scored())
    acc = task.accuracy(probs["test"], inp.labels("test"))
    checks = {} if generative else {"student": student_checks(task, targets, probs)}
    warn = "".join(f"\n  WARNING {m.key}: {w}" for w in checks.get("student", {}).get("warnings", []))
    return {**info, "method": m.name, "model": r.strong.model, "test_accuracy": acc,
            "label_accuracy": label_acc, "diagnostics": labels.diagnostics, **ood_accuracy(task, inp, probs),
            **checks, **({"weak_label_calibration": calibration} if calibration else {}),
            "summary": f"{m.key}: labels on B acc {label_acc:.3f}, strong test acc {acc:.3f}{warn}"}


def key(recipe, unit: Unit) -> list:
    return [rundir.as_data(method_of(recipe, unit)), rundir.as_data(recipe.strong)]


def code(recipe, unit: Unit) -> list[str]:
    return [METHODS[method_of(recipe, unit).name].__name__]


STAGE = Stage(name="transfer", inputs=("data", "weak"), units=units, key=key,
              folder=lambda run, unit: run.stage_dir("transfer", unit.seed, unit.method), run=run,
              runs_models=True, code=code)
