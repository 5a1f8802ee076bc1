"""Command line: `w2s run | validate | report | theory | keys | models | data | methods | tasks`.

User mistakes print one clear message and exit with code 2; nothing else is caught.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline.errors import UserError

EPILOG = """examples:
  w2s run recipes/quickstart.yaml
  w2s run recipes/quickstart.yaml data.n_test=300 weak.train.epochs=1 name=try1
  w2s run recipes/quickstart.yaml "seeds=[0, 1, 2, 3, 4]" name=five_seeds
  w2s run recipes/sweeps/multiemo_sizes.yaml          (weak x strong pairs, shared stages, size plot)
  accelerate launch -m pipeline run recipes/quickstart.yaml
  accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml -m pipeline run recipes/quickstart.yaml
  w2s validate recipes/*.yaml
  w2s report runs/quickstart
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
    run.add_argument("--force", action="store_true", help="rerun every stage even if cached")
    run.add_argument("--force-stage", action="append", default=[], metavar="NAME",
                     help="rerun one stage (data, weak, ceiling, transfer, evaluate, theory); repeatable")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    val = sub.add_parser("validate", help="check recipes without running them; reports every problem")
    val.add_argument("recipes", type=Path, nargs="+")
    rep = sub.add_parser("report", help="re-render report.md and plots of a finished run from results.json")
    rep.add_argument("run_dir", type=Path)
    th = sub.add_parser("theory", help="run only the synthetic theory settings (seconds on a CPU)")
    th.add_argument("args", nargs="*", metavar="[RECIPE] key=value",
                    help="optional recipe (default: built-in theory defaults), then overrides like "
                         "theory.two_layer.n_seeds=3")
    th.add_argument("--force", action="store_true", help="rerun even if cached")
    keys = sub.add_parser("keys", help="list recipe keys with type, default and help")
    keys.add_argument("prefix", nargs="?", default="", help="only keys starting with this, e.g. strong.")
    mod = sub.add_parser("models", help="list model aliases, or prepare them (unpack/convert once)")
    mod.add_argument("action", choices=["list", "prepare"])
    mod.add_argument("aliases", nargs="*", help="aliases to prepare (default: all installed)")
    sub.add_parser("data", help="list the shipped datasets")
    sub.add_parser("methods", help="list the transfer methods")
    sub.add_parser("tasks", help="list the task kinds")
    return p


def _cmd_run(a) -> int:
    from pipeline.config.loading import load_recipe
    from pipeline.runner import Runner
    from pipeline.stages import STAGES
    from pipeline.sweep import run_sweep

    bad = [s for s in a.force_stage if s not in STAGES]
    if bad:
        raise UserError(f"--force-stage {bad[0]!r} is not a stage", f"stages: {', '.join(STAGES)}")
    recipe = load_recipe(a.recipe, a.overrides)
    if a.no_progress:
        os.environ["W2S_NO_PROGRESS"] = "1"
    start = time.perf_counter()
    runner = Runner(recipe, force=a.force, force_stages=a.force_stage, progress=not a.no_progress)
    run_dir = run_sweep(runner) if recipe.sweep.enabled else runner.run()
    runner.log(f"done in {time.perf_counter() - start:.1f} s: {run_dir}/report.md, {run_dir}/results.json")
    return 0


def _cmd_validate(a) -> int:
    import yaml

    from pipeline.config.loading import is_accelerate_config, load_recipe

    bad = 0

    for path in a.recipes:
        try:
            if path.is_file() and is_accelerate_config(yaml.safe_load(path.read_text())):
                print(f"skip  {path} (an accelerate config: accelerate launch --config_file {path} ...)")
                continue
        except yaml.YAMLError:
            pass  # load_recipe reports it
        try:
            load_recipe(path)
            print(f"ok    {path}")
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
    recipe = load_recipe(recipe_path, ["name=theory", *overrides] if recipe_path is None else overrides)
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
            state = models.check_spec(name)
            print(f"{name:14s} {al.kind:8s} {al.params:>7s}  {al.licence:20s} "
                  f"{'ready to prepare' if state is None else 'missing: ' + ', '.join(al.packages)}")
        print(f"\ncache: {models.cache_dir() / 'models'}   any other value: a local folder or a hub id")
        return 0
    names = a.aliases or [n for n in models.ALIASES if models.check_spec(n) is None]
    for name in names:
        if name not in models.ALIASES:
            raise UserError(f"unknown alias {name!r}", f"known: {', '.join(models.ALIASES)}")
        start = time.perf_counter()
        print(f"{name}: {models.resolve(name)} ({time.perf_counter() - start:.1f} s)")
    return 0


def _cmd_data(a) -> int:
    from pipeline.data import DATASETS, data_dir

    for name, spec in DATASETS.items():
        present = (data_dir() / spec.file).exists()
        print(f"{name:14s} {spec.description}{'' if present else '  [file missing]'}")
    return 0


def _cmd_methods(a) -> int:
    from pipeline.methods import METHODS

    for name, module in METHODS.items():
        print(f"{name:14s} {(module.__doc__ or '').strip().splitlines()[0]}")
    return 0


def _cmd_tasks(a) -> int:
    import importlib

    from pipeline import tasks

    for name, module in tasks.TASKS.items():
        doc = importlib.import_module(module).__doc__ or ""
        print(f"{name:14s} {doc.strip().splitlines()[0]}")
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
               "tasks": _cmd_tasks}[a.command]
    try:
        return handler(a)
    except UserError as e:
        print(f"w2s: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("w2s: interrupted; finished stages are kept and will be reused", file=sys.stderr)
        return 130


def _report(a) -> int:
    """`w2s report RUN_DIR`: rebuild report.md and plots of a run or a sweep from its results.json."""
    from pipeline import sweep
    from pipeline.stages import report

    results = report.read_results(a.run_dir)
    (sweep.render if results.get("sweep") else report.render)(results, Path(a.run_dir))
    print(Path(a.run_dir) / "report.md")
    return 0
