"""Transfer stage, once per method and seed: the method builds labels for B from the weak model's
(and whatever else its `MethodContext` offers), `hard` turns them one-hot, and the strong model is
trained on them with the method's loss."""

import numpy as np

from pipeline import models, rundir, tasks
from pipeline.data import dataset_prompt
from pipeline.errors import UserError
from pipeline.methods import METHODS
from pipeline.methods.base import MethodContext
from pipeline.stages.base import Job, SeedInputs, Stage, Unit, method_of, ood_accuracy, write_scored
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
        gen=task if r.task == "generation" else None, generator=generator)


def run(job: Job) -> dict:
    r, out, m, inp = job.recipe, job.folder, job.method, job.inputs()
    task = tasks.of(r)
    labels = METHODS[m.name].build_labels(m, method_context(job, inp, task))
    targets = task.harden(labels.targets) if m.hard or r.task == "generation" else np.asarray(labels.targets,
                                                                                               dtype=np.float32)
    gold = inp.labels("transfer")
    label_acc = task.accuracy(targets, gold)  # diagnostics only: B's gold never trains the student
    if job.is_main:
        task.save_labels(out / "labels", inp.examples("transfer"), targets)
    fit = Fit(r.strong, "transfer", targets, f"transfer/{m.key}", loss=m.loss, out_dir=out)
    probs, info = task.fit_and_predict(fit, inp, dict.fromkeys(inp.scored()))
    if job.is_main:
        write_scored(task, out, inp, probs, inp.scored())
    acc = task.accuracy(probs["test"], inp.labels("test"))
    return {**info, "method": m.name, "model": r.strong.model, "test_accuracy": acc,
            "label_accuracy": label_acc, "diagnostics": labels.diagnostics, **ood_accuracy(task, inp, probs),
            "summary": f"{m.key}: labels on B acc {label_acc:.3f}, strong test acc {acc:.3f}"}


def key(recipe, unit: Unit) -> list:
    return [rundir.as_data(method_of(recipe, unit)), rundir.as_data(recipe.strong)]


def code(recipe, unit: Unit) -> list[str]:
    return [METHODS[method_of(recipe, unit).name].__name__]


STAGE = Stage(name="transfer", inputs=("data", "weak"), units=units, key=key,
              folder=lambda run, unit: run.stage_dir("transfer", unit.seed, unit.method), run=run,
              runs_models=True, code=code)
