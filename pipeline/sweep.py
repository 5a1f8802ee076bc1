"""Weak x strong sweeps: every (weak, strong) pair of a recipe's `sweep:` lists runs as its own run
directory, while the stages a pair shares with another live once in the sweep folder:

    <sweep>/data, <sweep>/features                  split and frozen features (per model)
    <sweep>/models/weak-<w>/seed<N>/weak            weak labels of weak model w: shared by its pairs
    <sweep>/models/strong-<s>/seed<N>/ceiling       ceiling of strong model s: shared by its pairs
    <sweep>/pairs/<w>_to_<s>/...                    transfers, evaluation and report of one pair
    <sweep>/results.json, report.md, sweep_size.png the summary (Burns et al. 2023, Fig. 3 style)

A suite (`sweep.datasets: [...]`) runs every pair on each dataset: each dataset's split, features and
weak / ceiling models live under `<sweep>/datasets/<name>/`, its pairs in `<sweep>/pairs/<name>_<w>_to_<s>`,
and the summary adds each method's PGR per dataset, the median across datasets with an interval that
resamples datasets, the paired Δ against the baseline per dataset, and `suite_pgr.png`.

Sharing is the runner's ordinary cache: a pair's weak stage has the same cache key and folder as any
other pair's with the same weak model, so it runs once and is reused.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.config.loading import to_dict
from pipeline.config.schema import SweepConfig
from pipeline.errors import UserError
from pipeline.plotting import pyplot, save
from pipeline.preflight import preflight
from pipeline.rundir import read_json, write_json, write_text
from pipeline.runner import Runner, write_run_files
from pipeline.theory.report import markdown_section


def _slug(spec: str) -> str:
    name = spec if spec in models.ALIASES else Path(spec.rstrip("/")).name or spec
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)[-40:]


def param_count(spec: str) -> int:
    """Parameters of a model without loading its weights: safetensors headers of a local folder, else an
    empty (meta-device) instance built from its config."""
    path = Path(models.resolve(spec))
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if files:
        total = 0
        for f in files:
            try:
                header = models.safetensors_header(f)
            except (OSError, ValueError) as e:
                raise UserError(f"cannot size model {spec!r} for the sweep: {f.name}: {e}",
                                "copy or prepare the model folder again") from None
            total += sum(int(np.prod(v["shape"])) for k, v in header.items() if k != "__metadata__")
        return total
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot size model {spec!r} for the sweep: {str(e).splitlines()[0]}",
                        "use a local folder or an alias, or set sweep.pairs: all") from None
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _names(entries) -> list[str]:
    """Folder-safe unique names: the model's slug, plus the mode when two entries share it, plus the settings
    that tell them apart when they share that too (a training budget: `minilm-full-epochs2`), else an index."""
    slugs = [_slug(m.model) for m in entries]
    names = [s if slugs.count(s) == 1 else f"{s}-{m.mode}" for s, m in zip(slugs, entries)]
    leaves = [_leaves(to_dict(m)) for m in entries]
    out = []
    for i, n in enumerate(names):
        twins = [j for j, o in enumerate(names) if o == n]
        if len(twins) > 1:
            differ = [k for k in leaves[i] if k != "model" and len({repr(leaves[j].get(k)) for j in twins}) > 1]
            tail = "-".join(f"{k.split('.')[-1]}{leaves[i][k]}" for k in differ[:2])
            n = "".join(c if c.isalnum() or c in "-." else "-" for c in f"{n}-{tail}") if tail else n
        out.append(n)
    return [n if out.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(out)]


def plan(recipe) -> list[dict]:
    """The pairs to run, in order: dicts with weak/strong configs, names and parameter counts (and, in a
    suite, the dataset: every pair once per dataset)."""
    weak = list(recipe.sweep.weak) or [recipe.weak]
    strong = list(recipe.sweep.strong) or [recipe.strong]
    sizes = {m.model: param_count(m.model) for m in weak + strong}
    pairs = []
    for ds in recipe.sweep.datasets or [None]:
        for wname, w in zip(_names(weak), weak):
            for sname, s in zip(_names(strong), strong):
                if recipe.sweep.pairs == "weak_le_strong" and sizes[w.model] > sizes[s.model]:
                    continue
                pairs.append({"weak": w, "strong": s, "weak_name": wname, "strong_name": sname,
                              "name": (f"{ds}_" if ds else "") + f"{wname}_to_{sname}", "dataset": ds,
                              "models": f"{wname}_to_{sname}",
                              "weak_params": sizes[w.model], "strong_params": sizes[s.model]})
    if not pairs:
        raise UserError("the sweep has no pair to run: every weak model is larger than every strong model",
                        "list larger strong models, or set sweep.pairs: all")
    return pairs


def pair_runners(runner: Runner) -> list[tuple[dict, Runner]]:
    """One Runner per pair of `runner`'s sweep (not yet run), sharing its accelerator and the shared
    stage folders; every pair's recipe is preflighted first."""
    r, acc, root = runner.recipe, runner.accelerator, runner.run_dir
    out = []
    for p in plan(r):
        ds = p["dataset"]
        data = dataclasses.replace(r.data, name=ds, path=None) if ds else r.data
        pr = dataclasses.replace(r, name=p["name"], weak=p["weak"], strong=p["strong"], sweep=SweepConfig(),
                                 data=data, theory=dataclasses.replace(r.theory, enabled=False))
        preflight(pr, acc.num_processes)
        base = root / "datasets" / ds if ds else root  # a suite: each dataset's split, features and models apart
        roots = {"data": base, "features": base, "weak": base / "models" / f"weak-{p['weak_name']}",
                 "ceiling": base / "models" / f"strong-{p['strong_name']}"}
        out.append((p, Runner(pr, accelerator=acc, force=runner.force, force_stages=runner.force_stages,
                              progress=runner.progress, log=runner.log, run_dir=root / "pairs" / p["name"],
                              roots=roots)))
    return out


def run_sweep(runner: Runner) -> Path:
    """Run every pair of `runner`'s recipe through its own Runner; `runner` runs the sweep-level theory
    stage and collects what the pairs computed."""
    r, acc, root = runner.recipe, runner.accelerator, runner.run_dir
    subs = pair_runners(runner)
    pairs = [p for p, _ in subs]
    write_run_files(root, r, acc)
    runner.log(f"[sweep] {len(pairs)} pairs: " + ", ".join(p["name"] for p in pairs))
    start = time.perf_counter()
    for i, (p, sub) in enumerate(subs):
        runner.log(f"[sweep] pair {i + 1}/{len(pairs)}: {p['name']}")
        sub.run(preflight_checks=False)
        runner.executed += sub.executed
        runner.timings.update({f"{p['name']}/{k}": v for k, v in sub.timings.items()})
    if r.theory.enabled:
        runner.run_theory()
    if acc.is_main_process:
        results = collect(root, r, pairs, runner, time.perf_counter() - start, subs)
        render(results, root)
        runner.log(f"[sweep] {root / 'report.md'}")
    acc.wait_for_everyone()
    return root


def collect(root: Path, recipe, pairs: list[dict], runner, wall: float, subs=()) -> dict:
    rows = []
    for p in pairs:
        res = read_json(root / "pairs" / p["name"] / "results.json")
        rows.append({
            "pair": p["name"], "dataset": p["dataset"], "models": p["models"], "weak": p["weak"].model,
            "strong": p["strong"].model,
            "weak_mode": p["weak"].mode, "strong_mode": p["strong"].mode,
            "weak_params": p["weak_params"], "strong_params": p["strong_params"],
            "weak_accuracy": res["weak"]["accuracy"], "ceiling_accuracy": res["ceiling"]["accuracy"],
            "methods": {k: {"accuracy": v["accuracy"], "auroc": v.get("auroc"), "pgr": v["pgr"],
                            **({"vs_baseline": v["vs_baseline"]} if "vs_baseline" in v else {})}
                        for k, v in res["methods"].items()}, "baseline": res.get("baseline"),
        })
        if "test_ood" in res:  # the shifted test set: every model's accuracy there, and PGR there
            ood = res["test_ood"]
            scored = ood["models"]
            rows[-1]["test_ood"] = {
                "weak_accuracy": scored["weak"]["accuracy"], "ceiling_accuracy": scored["ceiling"]["accuracy"],
                "methods": {k: {"accuracy": scored[k]["accuracy"], "pgr": ood["pgr"][k]} for k in res["methods"]}}
    results = {"name": recipe.name, "sweep": True, "pairs": rows, "methods": [m.key for m in recipe.methods],
               "seeds": recipe.seed_list, "stages_executed": len(runner.executed), "wall_time_s": round(wall, 1),
               "stages": runner.timings, "config": to_dict(recipe)}
    if recipe.sweep.datasets:
        results["suite"] = suite_summary(rows, results["methods"], recipe.evaluate)
    settings = weak_settings(subs, recipe)
    if settings:
        results["weak_settings"] = settings
    theory = root / "theory" / "metrics.json"
    if recipe.theory.enabled and theory.exists():
        results["theory"] = read_json(theory)
    write_json(root / "results.json", results)
    return results


def weak_settings(subs, recipe) -> list[dict]:
    """Where the sweep lists several weak models (or one model in several modes or budgets) under the same
    strong model and dataset: every later weak entry against the first, per method, paired (the same seeds
    and test examples; `metrics.compare_settings`): Δ weak accuracy, Δ student accuracy and Δ PGR."""
    from pipeline import tasks
    from pipeline.metrics import compare_settings
    from pipeline.stages.evaluate import _per_seed

    groups: dict = {}
    for p, sub in subs:
        groups.setdefault((p["dataset"], p["strong_name"]), []).append((p, sub))
    out = []
    for (dataset, strong), members in groups.items():
        if len(members) < 2:
            continue
        merged: dict = {}
        for p, sub in members:
            for seed, (y, probs) in _per_seed(sub.recipe, sub.paths, tasks.of(sub.recipe), "test").items():
                if recipe.task == "generation":  # correctness 0/1 against an all-ones "label"
                    y = np.ones(len(y), dtype=int)
                entry = merged.setdefault(seed, (y, {"ceiling": probs["ceiling"]}))
                entry[1].update({f"{p['weak_name']}/{k}": v for k, v in probs.items() if k != "ceiling"})
        (ref, _), e = members[0], recipe.evaluate
        for p, _ in members[1:]:
            for m in recipe.methods:
                d = compare_settings(merged, (f"{ref['weak_name']}/weak", f"{ref['weak_name']}/{m.key}"),
                                     (f"{p['weak_name']}/weak", f"{p['weak_name']}/{m.key}"), "ceiling",
                                     e.bootstrap, e.ci, e.seed, shared_test=not recipe.data.vary_split)
                out.append({"dataset": dataset, "strong": strong, "reference": ref["weak_name"],
                            "other": p["weak_name"], "method": m.key, **d})
    return out


def _settings_lines(results: dict) -> list[str]:
    rows = results.get("weak_settings")
    if not rows:
        return []
    suite = any(r["dataset"] for r in rows)
    lines = ["", "### Weak settings compared, paired", "",
             "Each later weak entry minus the first under the same strong model" + (" and dataset" if suite else "")
             + ": the same seeds and test examples for both, so their shared noise cancels. Δ in points of "
             "accuracy; Δ PGR uses each setting's own weak model.", "",
             "| " + ("dataset | " if suite else "") + "strong | weak: other − reference | method | Δ weak acc | "
             "Δ student acc | Δ PGR |", "|" + ("---|" if suite else "") + "---|---|---|---|---|---|"]
    for r in rows:
        if "student" not in r:
            continue
        g = r["pgr"]
        pgr = "undefined" if g["value"] is None else f"{g['value']:+.2f} [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]"
        lines.append("| " + (f"{r['dataset']} | " if suite else "") + f"{r['strong']} | {r['other']} − "
                     f"{r['reference']} | {r['method']} | {_points(r['weak'])} | {_points(r['student'])} | {pgr} |")
    return lines


def suite_summary(rows: list[dict], methods: list[str], eval_cfg) -> dict:
    """Across a suite's datasets, per (weak, strong) pair and method: each dataset's PGR (accuracy), their
    median with an interval that resamples the datasets (a bootstrap over datasets: which benchmarks were
    chosen is the noise here), and each dataset's paired Δ accuracy against the baseline."""
    rng = np.random.default_rng(eval_cfg.seed)
    out = {}
    for pair in dict.fromkeys(r["models"] for r in rows):
        mine = [r for r in rows if r["models"] == pair]
        entry = {}
        for m in methods:
            per = {r["dataset"]: r["methods"][m]["pgr"]["accuracy"]["value"] for r in mine}
            delta = {r["dataset"]: r["methods"][m]["vs_baseline"]["accuracy"] for r in mine
                     if "vs_baseline" in r["methods"][m]}
            vals = np.array([v for v in per.values() if v is not None])
            e = {"pgr_per_dataset": per, "delta_vs_baseline_per_dataset": delta, "n_defined": int(len(vals))}
            if len(vals):
                boots = np.median(vals[rng.integers(0, len(vals), size=(eval_cfg.bootstrap, len(vals)))], 1)
                lo, hi = np.percentile(boots, [(1 - eval_cfg.ci) / 2 * 100, (1 + eval_cfg.ci) / 2 * 100])
                e["median_pgr"] = {"value": float(np.median(vals)), "ci95": [float(lo), float(hi)]}
            entry[m] = e
        out[pair] = entry
    return out


def plot_suite(results: dict, root: Path) -> str:
    """Burns et al.-style: PGR (accuracy) per dataset, one marker per method, each pair its own panel."""
    plt = pyplot()
    suite = results["suite"]
    n_datasets = len(results["config"]["sweep"]["datasets"])
    fig, axes = plt.subplots(1, len(suite), figsize=((3 + 1.6 * n_datasets) * len(suite), 4), squeeze=False)
    markers = "os^Dvx*P"
    for ax, (pair, entry) in zip(axes[0], suite.items()):
        datasets = list(next(iter(entry.values()))["pgr_per_dataset"])
        for j, (m, e) in enumerate(entry.items()):
            xs = [i + (j - (len(entry) - 1) / 2) * 0.08 for i, d in enumerate(datasets)
                  if e["pgr_per_dataset"][d] is not None]
            ys = [e["pgr_per_dataset"][d] for d in datasets if e["pgr_per_dataset"][d] is not None]
            ax.plot(xs, ys, linestyle="none", marker=markers[j % len(markers)], label=m)
        ax.axhline(0, color="#888888", linewidth=0.8)
        ax.axhline(1, color="#888888", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(datasets)), datasets, fontsize=8, rotation=20)
        ax.set_ylabel("PGR (accuracy)")
        ax.set_title(pair, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{results['name']}: PGR per dataset (undefined PGRs omitted)", fontsize=10)
    return save(fig, root, "suite_pgr.png")


def _suite_lines(results: dict) -> list[str]:
    lines = []
    for pair, entry in results["suite"].items():
        datasets = list(next(iter(entry.values()))["pgr_per_dataset"])
        lines += ["", f"### Suite: {pair}", "",
                  "PGR (accuracy) per dataset; the median's interval resamples the datasets. Δ: paired accuracy "
                  "difference against the baseline on that dataset (points).", "",
                  "| method | " + " | ".join(datasets) + " | median PGR |", "|---|" + "---|" * (len(datasets) + 1)]
        for m, e in entry.items():
            cells = []
            for d in datasets:
                v = e["pgr_per_dataset"][d]
                dv = e["delta_vs_baseline_per_dataset"].get(d)
                lo, hi = dv["ci95"] if dv else (0, 0)
                cells.append(("undefined" if v is None else f"{v:.2f}")
                             + (f" (Δ {dv['value'] * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}])" if dv else ""))
            med = e.get("median_pgr")
            lines.append(f"| {m} | " + " | ".join(cells) + " | "
                         + (f"{med['value']:.2f} [{med['ci95'][0]:.2f}, {med['ci95'][1]:.2f}]" if med else "—")
                         + f" ({e['n_defined']} of {len(datasets)} defined) |")
    return lines


def _points(e: dict) -> str:
    return f"{e['value'] * 100:+.1f} [{e['ci95'][0] * 100:+.1f}, {e['ci95'][1] * 100:+.1f}]"


def _pct(e: dict) -> str:
    return f"{e['value'] * 100:.1f} [{e['ci95'][0] * 100:.1f}, {e['ci95'][1] * 100:.1f}]"


def _pgr(e: dict) -> str:
    return "undefined" if e["value"] is None else f"{e['value']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]"


def plot(results: dict, root: Path) -> str:
    """Test accuracy and PGR against strong-model size, one line per weak model, one column per method."""
    import matplotlib

    plt = pyplot()

    methods, rows = results["methods"], results["pairs"]
    fig, axes = plt.subplots(2, len(methods), figsize=(4.2 * len(methods), 7), squeeze=False)
    # one line per weak model (named as its pairs are: with its mode where the sweep lists it twice) and dataset
    datasets = list(dict.fromkeys(r.get("dataset") for r in rows))
    key = {id(r): r["models"].split("_to_")[0] + (f" on {r['dataset']}" if len(datasets) > 1 else "") for r in rows}
    weak_models = list(dict.fromkeys(key.values()))
    colors = dict(zip(weak_models, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    for j, m in enumerate(methods):
        ax_acc, ax_pgr = axes[0, j], axes[1, j]
        for i, d in enumerate(datasets):
            ceil = sorted({(r["strong_params"], r["ceiling_accuracy"]["value"]) for r in rows if r.get("dataset") == d})
            ax_acc.plot([c[0] for c in ceil], [c[1] * 100 for c in ceil], "k--", marker="s",
                        label="strong ceiling" + (f" on {d}" if len(datasets) > 1 else ""),
                        alpha=1 - 0.5 * i / len(datasets))
        for w in weak_models:
            mine = sorted((r for r in rows if key[id(r)] == w), key=lambda r: r["strong_params"])
            x = [r["strong_params"] for r in mine]
            ax_acc.plot(x, [r["methods"][m]["accuracy"]["value"] * 100 for r in mine], marker="o", color=colors[w],
                        label=f"weak {w}")
            ax_acc.axhline(mine[0]["weak_accuracy"]["value"] * 100, color=colors[w], linestyle=":", linewidth=1)
            pts = [(r["strong_params"], r["methods"][m]["pgr"]["accuracy"]) for r in mine]
            defined = [(xx, p) for xx, p in pts if p["value"] is not None]
            if defined:
                ax_pgr.errorbar([xx for xx, _ in defined], [p["value"] for _, p in defined],
                                yerr=[[p["value"] - p["ci95"][0] for _, p in defined],
                                      [p["ci95"][1] - p["value"] for _, p in defined]],
                                marker="o", capsize=3, color=colors[w], label=f"weak {w}")
        sizes = sorted({(r["strong_params"], r["strong"]) for r in rows})
        for ax in (ax_acc, ax_pgr):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks([x for x, _ in sizes], [f"{Path(n).name}\n{x / 1e6:.0f}M" for x, n in sizes], fontsize=7)
            ax.set_xlabel("strong model (parameters, log scale)")
        ax_acc.set_title(f"{m}: test accuracy (dotted: weak)", fontsize=9)
        ax_acc.set_ylabel("test accuracy (%)")
        ax_pgr.axhline(0, color="#888888", linewidth=0.8)
        ax_pgr.axhline(1, color="#888888", linewidth=0.8, linestyle="--")
        ax_pgr.set_title(f"{m}: PGR (accuracy); undefined pairs omitted", fontsize=9)
        ax_pgr.set_ylabel("PGR")
        ax_acc.legend(fontsize=7)
    fig.suptitle(f"{results['name']}: weak-to-strong by model size", fontsize=11)
    return save(fig, root, "sweep_size.png")


def _pair_rows(pairs: list[dict], methods: list[str]) -> list[str]:
    """One table row per pair: its dataset in a suite, and a model's training mode where the sweep lists that
    model in more than one mode (the names alone would not tell the rows apart)."""
    suite = any(r.get("dataset") for r in pairs)
    out = []
    for r in pairs:
        def model(side):
            modes = {q[f"{side}_mode"] for q in pairs if q[side] == r[side]}
            mode = f", {r[f'{side}_mode']}" if len(modes) > 1 else ""
            return f"{r[side]} ({r[f'{side}_params'] / 1e6:.0f}M{mode})"

        cells = [f"{_pct(r['methods'][m]['accuracy'])} | {_pgr(r['methods'][m]['pgr']['accuracy'])}" for m in methods]
        out.append("| " + (f"{r['dataset']} | " if suite else "") + f"{model('weak')} | {model('strong')} | "
                   f"{_pct(r['weak_accuracy'])} | {_pct(r['ceiling_accuracy'])} | " + " | ".join(cells) + " |")
    return out


def render(results: dict, root: Path) -> None:
    image = plot(results, root)
    suite = plot_suite(results, root) if "suite" in results else None
    seeds = results["seeds"]
    lines = [f"# Weak-to-strong sweep: {results['name']}", "",
             f"{len(results['pairs'])} (weak, strong) pairs, seeds {', '.join(map(str, seeds))}; accuracies in %, "
             "brackets are bootstrap intervals (see each pair's report). Wall time of this invocation: "
             f"{results['wall_time_s']:.0f} s, {results['stages_executed']} stages computed (the rest cached or "
             "shared between pairs).", "",
             "| " + ("dataset | " if suite else "") + "weak | strong | weak acc | ceiling acc | "
             + " | ".join(f"{m} acc | {m} PGR" for m in results["methods"]) + " |",
             "|" + ("---|" if suite else "") + "---|---|---|---|" + "---|---|" * len(results["methods"])]
    header = lines[-2:]
    lines += _pair_rows(results["pairs"], results["methods"])
    shifted = [{**r, **r["test_ood"]} for r in results["pairs"] if "test_ood" in r]
    if shifted:
        lines += ["", "Shifted test set (`data.test_ood`), every model scored there; PGR there:", "", *header]
        lines += _pair_rows(shifted, results["methods"])
    lines += _settings_lines(results)
    if suite:
        lines += _suite_lines(results) + ["", f"![suite plot]({suite})"]
    lines += ["", f"![size plot]({image})", "", "Per pair: `pairs/<weak>_to_<strong>/report.md`"
              + (" (a suite: `pairs/<dataset>_<weak>_to_<strong>/`)." if suite else ".")]
    if "theory" in results:
        lines += ["", markdown_section(results["theory"], rel_dir="theory")]
    write_text(root / "report.md", "\n".join(lines) + "\n")
