"""Command line: `w2s run | validate | report | theory | keys | models | data | methods | tasks`.

User mistakes print one clear message and exit with code 2; nothing else is caught.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline.errors import UserError

_PROCESSES_HELP = "check that every global batch divides over a launch on N processes"

EPILOG = """examples:
  w2s run recipes/quickstart.yaml
  w2s run recipes/quickstart.yaml data.n_test=300 weak.train.epochs=1 name=try1
  w2s run recipes/quickstart.yaml "seeds=[0, 1, 2, 3, 4]" name=five_seeds
  w2s run recipes/sweeps/multiemo_sizes.yaml          (weak x strong pairs, shared stages, size plot)
  accelerate launch -m pipeline run recipes/quickstart.yaml
  accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml -m pipeline run recipes/quickstart.yaml
  w2s run recipes/smoke.yaml                          (under a minute: a first look)
  w2s run recipes/quickstart.yaml --dry-run           (the resolved recipe and which stages would run)
  w2s validate recipes/quickstart.yaml data.n_test=5000
  w2s validate recipes/multiemo/qwen2.5-0.5b_to_qwen2.5-7b.yaml --num-processes 8   (batches vs 8 GPUs)
  w2s report runs/quickstart
  w2s runs runs/                                      (every run: finished or not, stages, PGR)
  w2s compare runs/quickstart runs/try1
  w2s theory theory.two_layer.n_seeds=3
  w2s keys strong.          (every recipe key with its type, default and meaning)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="w2s", description="Weak-to-strong fine-tuning pipeline: train a weak supervisor, transfer its labels "
        "to a strong student with several methods, and report accuracy, AUROC and performance gap recovered.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a recipe (finished stages are reused from the run directory)",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("recipe", type=Path, help="recipe YAML, e.g. recipes/quickstart.yaml")
    run.add_argument("overrides", nargs="*", metavar="key.sub=value", help="override recipe keys (see `w2s keys`)")
    run.add_argument("--force", action="store_true",
                     help="rerun every stage even if cached (and replace the results of a run on other data)")
    run.add_argument("--force-stage", action="append", default=[], metavar="NAME",
                     help="rerun one stage (data, weak, ceiling, transfer, evaluate, theory); repeatable")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    run.add_argument("--dry-run", action="store_true",
                     help="check everything, print the resolved recipe and the stage plan (what runs, what is "
                          "reused and why); write nothing")
    run.add_argument("--num-processes", type=int, metavar="N", default=None,
                     help="with --dry-run: " + _PROCESSES_HELP + " (a dry run under `accelerate launch` takes "
                          "the launched count); a real run checks the count it was launched on")
    val = sub.add_parser("validate", help="check recipes without running them (schema, data, splits, models, "
                                          "methods, output folder); reports every problem")
    val.add_argument("recipes", nargs="+", metavar="RECIPE [key=value]",
                     help="recipe files, then optional overrides applied to each")
    val.add_argument("--num-processes", type=int, metavar="N", default=None, help=_PROCESSES_HELP)
    val.add_argument("--schema-only", action="store_true",
                     help="check keys and values only (e.g. a recipe meant for another machine's models)")
    rep = sub.add_parser("report", help="re-render report.md and plots of a finished run from results.json")
    rep.add_argument("run_dir", type=Path)
    th = sub.add_parser("theory", help="run only the synthetic theory settings (seconds on a CPU)")
    th.add_argument("args", nargs="*", metavar="[RECIPE] key=value",
                    help="optional recipe (default: built-in theory defaults), then overrides like "
                         "theory.two_layer.n_seeds=3")
    th.add_argument("--force", action="store_true", help="rerun even if cached")
    keys = sub.add_parser("keys", help="list recipe keys with type, default and help")
    keys.add_argument("prefix", nargs="?", default="", help="only keys starting with this, e.g. strong.")
    mod = sub.add_parser("models", help="list model aliases (default), or prepare them (unpack/convert once)")
    mod.add_argument("action", choices=["list", "prepare"], nargs="?", default="list")
    mod.add_argument("aliases", nargs="*", help="aliases to prepare (default: all installed)")
    dat = sub.add_parser("data", help="list the dataset registry (default), show one entry, or prepare a hub "
                                      "dataset for offline runs",
                         description="w2s data list | w2s data show NAME | w2s data prepare NAME [--out DIR]")
    dat.add_argument("action", choices=["list", "show", "prepare"], nargs="?", default="list")
    dat.add_argument("name", nargs="?", help="a registry dataset (show, prepare)")
    dat.add_argument("--out", type=Path, default=None,
                     help="prepare: the folder to write "
                          "(default: $W2S_DATASETS_DIR/NAME or ~/.cache/w2s/datasets/NAME)")
    runs = sub.add_parser("runs", help="list the runs under a folder: finished or interrupted, stages done, PGR")
    runs.add_argument("folder", type=Path, nargs="?", default=Path("runs"))
    cmp = sub.add_parser("compare", help="two runs' accuracy, AUROC and PGR side by side")
    cmp.add_argument("run_dirs", type=Path, nargs=2, metavar="RUN")
    sub.add_parser("methods", help="list the transfer methods")
    sub.add_parser("tasks", help="list the task kinds")
    return p


def _processes(a, launched: bool = False) -> int | None:
    """The process count a check should assume: --num-processes, else (`launched`: a dry run started by
    `accelerate launch` or torchrun, which set WORLD_SIZE with LOCAL_RANK in every process) the launched
    one, else unknown. A bare WORLD_SIZE (cluster schedulers export their own) is not trusted."""
    if a.num_processes is not None:
        if a.num_processes < 1:
            raise UserError(f"--num-processes must be at least 1, got {a.num_processes}",
                            "give the number of processes the run will be launched on, e.g. --num-processes 8")
        return a.num_processes
    world = os.environ.get("WORLD_SIZE", "")
    return int(world) if launched and world.isdigit() and "LOCAL_RANK" in os.environ else None


def _cmd_run(a) -> int:
    from pipeline.config.loading import load_recipe
    from pipeline.stages import STAGES

    bad = [s for s in a.force_stage if s not in STAGES]
    if bad:
        raise UserError(f"--force-stage {bad[0]!r} is not a stage", f"stages: {', '.join(STAGES)}")
    recipe = load_recipe(a.recipe, a.overrides)
    if a.no_progress:
        os.environ["W2S_NO_PROGRESS"] = "1"
    if a.num_processes is not None and not a.dry_run:
        raise UserError("--num-processes only sets what --dry-run checks; it does not start processes",
                        f"launch them: accelerate launch --num_processes {a.num_processes} -m pipeline run ...")
    if a.dry_run:
        from pipeline.preflight import preflight

        # before the accelerator: the plan needs no hardware to be checked
        preflight(recipe, _processes(a, launched=True))
    from pipeline.lock import run_lock
    from pipeline.runner import Runner
    from pipeline.sweep import run_sweep

    start = time.perf_counter()
    runner = Runner(recipe, force=a.force, force_stages=a.force_stage, progress=not a.no_progress)
    if a.dry_run:
        return _dry_run(runner)
    acc = runner.accelerator

    def share(message: str) -> str:  # every rank gets the main process's verdict on the lock
        if acc.num_processes == 1:
            return message
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([message])[0]

    with run_lock(runner.run_dir, acc.is_main_process, share, runner.log):
        if not a.force:
            _same_experiment(runner.run_dir, recipe)
        run_dir = run_sweep(runner) if recipe.sweep.enabled else runner.run()
    runner.log(f"done in {time.perf_counter() - start:.1f} s: {run_dir}/report.md, {run_dir}/results.json")
    return 0


def _same_experiment(run_dir: Path, recipe) -> None:
    """Refuse to run into a run directory made by an incompatible w2s, or whose results came from other
    data (or another task kind): they would be replaced stage by stage without a word. Other edits rerun
    what they change."""
    import yaml

    from pipeline.config.loading import identity_changes, to_dict
    from pipeline.rundir import format_problem

    if problem := format_problem(run_dir):
        raise UserError(problem, "give the run a new name (name=...) to keep it, or pass --force to recompute "
                                 "everything in it with this version")
    made_by = run_dir / "config.yaml"
    if not (run_dir / "results.json").exists() or not made_by.exists():
        return
    try:
        old = yaml.safe_load(made_by.read_text()) or {}
    except yaml.YAMLError:
        return
    changes = identity_changes(old, to_dict(recipe))
    if changes:
        raise UserError(f"{run_dir} holds the results of a run on other data; this recipe differs in "
                        + "; ".join(changes),
                        "give the run a new name (name=...) to keep both, or pass --force to replace them")


def _dry_run(runner) -> int:
    """The resolved recipe and, per unit, whether it would run or be reused (and why); writes nothing."""
    import yaml

    from pipeline.config.loading import to_dict
    from pipeline.sweep import pair_runners

    print("# resolved recipe\n" + yaml.safe_dump(to_dict(runner.recipe), sort_keys=False))
    why = {"reuse": "finished with this key", "new": "not run yet", "changed": "its config, code or inputs changed",
           "forced": "--force / --force-stage", "always": "re-rendered every run"}
    subs = pair_runners(runner) if runner.recipe.sweep.enabled else [({"name": None}, runner)]
    for pair, sub in subs:
        print(f"# plan{' of pair ' + pair['name'] if pair['name'] else ''}: {sub.run_dir}")
        for _, _, label, folder, _, state in sub.plan():
            reason = why.get(state, "an input it reads will run first")
            print(f"  {label:34s} {('reuse' if state == 'reuse' else 'run'):6s} {state:18s} ({reason})")
    print("nothing was written (dry run)")
    return 0


def _cmd_validate(a) -> int:
    import yaml

    from pipeline.config.loading import is_accelerate_config, load_recipe
    from pipeline.preflight import batch_problems, problems

    paths = [Path(x) for x in a.recipes if "=" not in x]
    overrides = [x for x in a.recipes if "=" in x]
    if not paths:
        raise UserError("validate needs a recipe file", "e.g. w2s validate recipes/quickstart.yaml data.n_test=300")
    bad, processes = 0, _processes(a)
    for path in paths:
        try:
            if path.is_file() and is_accelerate_config(yaml.safe_load(path.read_text())):
                print(f"skip  {path} (an accelerate config: accelerate launch --config_file {path} ...)")
                continue
        except yaml.YAMLError:
            pass  # load_recipe reports it
        try:
            recipe = load_recipe(path, overrides)
            theory_only = recipe.data.name is None and recipe.data.path is None and recipe.theory.enabled
            found = (batch_problems(recipe, processes) if a.schema_only else [] if theory_only
                     else problems(recipe, processes))
            if found:
                raise UserError(f"{path}: cannot run, {len(found)} problem(s):\n  - " + "\n  - ".join(found))
            print(f"ok    {path}" + (" (schema only)" if a.schema_only else " (theory only: w2s theory "
                                     f"{path})" if theory_only else ""))
        except UserError as e:
            bad += 1
            print(f"error {e}", file=sys.stderr)
    return 2 if bad else 0


def _cmd_theory(a) -> int:
    from pipeline.config.loading import load_recipe
    from pipeline.rundir import write_text
    from pipeline.runner import Runner
    from pipeline.theory.report import markdown_section

    recipe_path = None
    overrides = list(a.args)
    if overrides and "=" not in overrides[0]:
        recipe_path = Path(overrides.pop(0))
    # `w2s theory RECIPE` runs the theory stage even if the recipe switched it off for `w2s run`
    base = ["theory.enabled=true"] + (["name=theory"] if recipe_path is None else [])
    recipe = load_recipe(recipe_path, [*base, *overrides])
    runner = Runner(recipe, force=a.force)
    metrics = runner.run_theory()
    report = runner.run_dir / "report.md"
    text = f"# Theory sanity check: {recipe.name}\n\n" + markdown_section(metrics, rel_dir="theory")
    write_text(report, text)
    for p in metrics.get("predictions", []):
        state = {True: "held", False: "DID NOT HOLD", None: "not run"}[p.get("held")]
        print(f"  {p['id']:4s} {state:12s} {p.get('text', '')}")
    print(f"report: {report}")
    return 0


def _cmd_keys(a) -> int:
    from pipeline.config.loading import describe

    for key, typ, default, help_text in describe():
        if key.startswith(a.prefix):
            print(f"{key}  ({typ}{', default ' + default if default else ''})\n    {help_text}")
    return 0


def _cmd_models(a) -> int:
    from pipeline import models

    if a.action == "list":
        for name, al in models.ALIASES.items():
            if models.check_spec(name) is not None:
                state = "missing package(s): " + ", ".join(al.packages)
            else:
                state = "prepared" if models.is_prepared(name) else f"not prepared yet (w2s models prepare {name})"
            print(f"{name:14s} {al.kind:8s} {al.params:>7s}  {al.licence:20s} {state}")
        print(f"\ncache: {models.cache_dir() / 'models'}   any other value: a local folder or a hub id")
        return 0
    names = a.aliases or [n for n in models.ALIASES if models.check_spec(n) is None]
    for name in names:
        if name not in models.ALIASES:
            raise UserError(f"unknown alias {name!r}", f"known: {', '.join(models.ALIASES)}")
        start = time.perf_counter()
        # prepared again when it is missing or damaged (its weight files' sha256 are checked here)
        again = False
        if models.is_prepared(name):
            try:
                models.check_prepared(name, models.cache_dir() / "models" / name, full=True)
            except UserError as e:
                print(f"{name}: {e.message}; preparing it again")
                again = True
        print(f"{name}: {models.resolve(name, reprepare=again)} ({time.perf_counter() - start:.1f} s)")
    return 0


def _cmd_data(a) -> int:
    from pipeline import data
    from pipeline.suite import SUITE

    if a.action == "list":
        def short(licence: str) -> str:
            return licence if len(licence) <= 26 else licence[:25] + "…"

        print(f"{'name':20s} {'task':14s} {'where':24s} {'licence':26s} description")
        for name, spec in data.DATASETS.items():
            where = "shipped" if (data.data_dir() / spec.file).exists() else "shipped, file missing"
            print(f"{name:20s} {spec.task:14s} {where:24s} {short(spec.licence):26s} {spec.description}")
        for name, e in SUITE.items():
            where = "prepared" if (data.suite_dir() / name).exists() else "hub (w2s data prepare)"
            print(f"{name:20s} {e.task:14s} {where:24s} {short(e.licence):26s} {e.description}")
        print(f"\nhub datasets are cached in {data.suite_dir()}; `w2s data show NAME` for hub id, revision, licence, "
              "citation; with no hub, `data: {name: NAME, path: DIR}` reads your local copy")
        return 0
    if not a.name:
        raise UserError(f"`w2s data {a.action}` needs a dataset name",
                        "e.g. w2s data show boolq (names: w2s data list)")
    if a.action == "prepare":
        start = time.perf_counter()
        path = data.prepare(a.name, a.out)
        print(f"{a.name}: {path} ({time.perf_counter() - start:.1f} s); runs with data.name={a.name} now work offline"
              + (f" (set data.path={path})" if a.out else ""))
        return 0
    if a.name in data.DATASETS:
        spec = data.DATASETS[a.name]
        print(f"{a.name} ({spec.task}, shipped): {spec.description}\nfile: {data.data_dir() / spec.file}\n"
              f"licence: {spec.licence}\nprovenance: data/README.md")
        return 0
    if a.name not in SUITE:
        raise UserError(f"unknown dataset {a.name!r}", f"known: {', '.join([*data.DATASETS, *SUITE])}")
    e = SUITE[a.name]
    splits = ", ".join(f"{role} = hub {hub!r}" for role, hub in e.splits.items())
    print(f"{e.name} ({e.task}): {e.description}\nhub: {e.hub_id}" + (f" / {e.config}" if e.config else "")
          + f" @ {e.revision}\nsplits: {splits}\ncolumns read: {', '.join(e.columns)}\nlicence: {e.licence}\n"
          f"citation: {e.citation}\nsource: {e.source}")
    return 0


def _cmd_methods(a) -> int:
    from pipeline.methods import METHODS

    for name, module in METHODS.items():
        print(f"{name:14s} {_summary(module.__doc__)}")
    return 0


def _summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _cmd_runs(a) -> int:
    from pipeline.rundir import read_json_if_exists

    if not a.folder.is_dir():
        raise UserError(f"{a.folder} is not a folder", "pass the output_dir of your recipes, e.g. w2s runs runs")
    found = 0
    for run in sorted(p for p in a.folder.iterdir() if (p / "config.yaml").exists()):
        found += 1
        res = read_json_if_exists(run / "results.json")
        done = sorted(str(m.parent.relative_to(run)) for m in run.rglob("metrics.json"))
        finished = bool(res) and (run / "report.md").exists()
        if res.get("sweep"):
            head = f"sweep of {len(res.get('pairs', []))} pairs"
        elif res:
            pgr = [f"{k} {v['pgr']['accuracy']['value']:.2f}" if v["pgr"]["accuracy"]["value"] is not None
                   else f"{k} undefined" for k, v in res.get("methods", {}).items()]
            head = "PGR(acc): " + ", ".join(pgr)
        else:
            head = "no results yet"
        print(f"{run.name:24s} {'finished' if finished else 'unfinished':10s} {len(done):3d} stages done  {head}")
    if not found:
        print(f"no runs under {a.folder} (a run folder holds config.yaml)")
    return 0


def _cmd_compare(a) -> int:
    from pipeline.stages.report import read_results

    left, right = (read_results(d) for d in a.run_dirs)
    if left.get("sweep") or right.get("sweep"):
        raise UserError("compare takes two single runs", "compare two pairs of a sweep: <sweep>/pairs/<pair>")

    def rows(res):
        out = {"weak": res["weak"], "ceiling": res["ceiling"]}
        out.update(res["methods"])
        return out

    def cell(entry, kind):
        if entry is None:
            return "—"
        e = entry["pgr"]["accuracy"] if kind == "pgr" else entry.get(kind)
        if e is None:  # a generation run has no AUROC
            return "—"
        return "undefined" if e["value"] is None else f"{e['value'] * (1 if kind == 'pgr' else 100):.2f}"

    lr, rr = rows(left), rows(right)
    names = [a.run_dirs[0].name, a.run_dirs[1].name]
    print(f"{'model':16s} " + "  ".join(f"{n[:10] + ' ' + k:>20s}" for k in ("acc %", "AUROC %", "PGR")
                                         for n in names))
    for key in dict.fromkeys([*lr, *rr]):
        cells = []
        for kind in ("accuracy", "auroc", "pgr"):
            for side in (lr, rr):
                e = side.get(key)
                cells.append("—" if e is None or (kind == "pgr" and "pgr" not in e) else cell(e, kind))
        print(f"{key:16s} " + "  ".join(f"{c:>20s}" for c in cells))
    for n, res in zip(names, (left, right)):
        print(f"{n}: {res['data'].get('summary', '?')}; seeds {res.get('seeds')}")
    return 0


def _cmd_tasks(a) -> int:
    import importlib

    from pipeline import tasks
    from pipeline.answers import CHECKERS

    for name, module in tasks.TASKS.items():
        print(f"{name:14s} {_summary(importlib.import_module(module).__doc__)}")
    print("\nanswer checkers of the generation task (generation.checker; default: the dataset's, else exact):")
    for name, fn in CHECKERS.items():
        print(f"  {name:12s} {_summary(fn.__doc__)}")
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = _parser()
    a, extra = parser.parse_known_args(argv)
    # Overrides may come after options (`w2s run r.yaml --force a.b=1`); argparse leaves those over.
    stray = [x for x in extra if x.startswith("-") or "=" not in x or a.command not in ("run", "theory")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if a.command == "run":
        a.overrides += extra
    elif a.command == "theory":
        a.args += extra
    if a.command is None:
        parser.print_help()
        return 2
    handler = {"run": _cmd_run, "validate": _cmd_validate, "report": lambda a: _report(a), "theory": _cmd_theory,
               "keys": _cmd_keys, "models": _cmd_models, "data": _cmd_data, "methods": _cmd_methods,
               "tasks": _cmd_tasks, "runs": _cmd_runs, "compare": _cmd_compare}[a.command]
    try:
        return handler(a)
    except UserError as e:
        print(f"w2s: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("w2s: interrupted; finished stages are kept and will be reused", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `w2s data list | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 0


def _report(a) -> int:
    """`w2s report RUN_DIR`: rebuild report.md and plots of a run or a sweep from its results.json."""
    from pipeline import sweep
    from pipeline.stages import report

    results = report.read_results(a.run_dir)
    (sweep.render if results.get("sweep") else report.render)(results, Path(a.run_dir))
    print(Path(a.run_dir) / "report.md")
    return 0
