"""Report stage: stage outputs -> results.json -> report.md + PNG plots. Runs every time (not cached).

`render` reads results.json only, so `w2s report RUN_DIR` re-renders a finished run. A method adds its
own section and plots through its module's `report_lines` / `plots` hooks.
"""

import json
from pathlib import Path

import numpy as np

import pipeline
from pipeline.config.loading import to_dict
from pipeline.errors import UserError
from pipeline.methods import METHODS
from pipeline.plotting import pyplot, save
from pipeline.rundir import (
    RUN_FORMAT,
    RunDir,
    format_problem,
    read_json,
    read_json_if_exists,
    write_json,
    write_text,
)
from pipeline.stages.base import Job, Stage, once
from pipeline.theory.report import markdown_section


def _model_selection(recipe) -> str:
    es = recipe.strong.train.early_stopping
    if not es.enabled:
        return "none: fixed number of epochs (head mode: L2 by CV on the head's own training labels)"
    text = (f"early stopping: best of {es.evals_per_epoch} evaluations per epoch by {es.metric} on a held-out "
            f"{es.val_fraction:.0%} of each stage's training split (patience {es.patience})")
    if es.select_on == "gold":
        return (text + ", scored against its GROUND TRUTH: an ORACLE. Transfer results selected this way use "
                "labels a weak-to-strong setting does not have and overstate what the method achieves")
    return text + ", scored against the stage's own training labels (weak labels for transfers)"


KINDS = ("accuracy", "auroc")
TITLES = {"accuracy": "accuracy (%)", "auroc": "AUROC (%)"}


def kinds_of(results: dict) -> tuple:
    """The metrics a run has (a generation task scores exact-match accuracy only: no AUROC)."""
    return tuple(k for k in KINDS if k in results["weak"])


def _header(kinds: tuple) -> list[str]:
    cols = [TITLES[k] for k in kinds] + [f"PGR ({k if k != 'auroc' else 'AUROC'})" for k in kinds]
    return ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]


def collect(run: RunDir, recipe, timings: dict) -> dict:
    """Assemble results.json from the stages' metrics.json files (pooled over seeds; per-seed detail kept)."""
    run_dir = run.root
    ev = read_json(run_dir / "evaluate" / "metrics.json")
    seeds = ev.get("seeds", [recipe.seed])

    def stage(seed: int, name: str, sub: str | None = None) -> dict:
        return read_json_if_exists(run.stage_dir(name, seed, sub) / "metrics.json")

    def model_entry(name: str, stages: dict, keep: tuple) -> dict:
        entry = {k: ev["models"][name][k] for k in KINDS if k in ev["models"][name]}
        entry["seeds"] = ev["models"][name].get("seeds", seeds)
        first = stages[entry["seeds"][0]]
        entry.update({k: first[k] for k in keep if k in first})
        for k in ("transfer_label_accuracy", "label_accuracy", "transfer_label_ece", "test_ece"):
            vals = [stages[s_][k] for s_ in entry["seeds"] if k in stages[s_]]
            if vals:
                entry[k] = float(np.mean(vals))
                entry[f"{k}_per_seed"] = vals
        return entry

    weak = {s_: stage(s_, "weak") for s_ in seeds}
    ceil = {s_: stage(s_, "ceiling") for s_ in seeds}
    results = {
        "name": recipe.name,
        "run_format": RUN_FORMAT,
        "w2s": pipeline.__version__,
        "seeds": seeds,
        "data": stage(seeds[0], "data"),
        "n_test": ev["n_test"], "n_bootstrap": ev["n_bootstrap"], "ci_level": ev["ci_level"],
        "weak": model_entry("weak", weak, ("model", "mode", "soft_label_quantiles", "head_l2", "checker",
                                           "trained_on")),
        "ceiling": model_entry("ceiling", ceil, ("model", "mode", "head_l2")),
        "methods": {},
        "model_selection": _model_selection(recipe),
        "oracle_selection": recipe.strong.train.early_stopping.enabled
        and recipe.strong.train.early_stopping.select_on == "gold",
        "stages": timings,
        "config": to_dict(recipe),
        "env": {**read_json_if_exists(run_dir / "env.json"), "seeds": seeds, "data_seed": recipe.data.seed,
                "vary_split": recipe.data.vary_split,
                "stage_wall_time_s": {k: v.get("wall_time_s") for k, v in timings.items()}},
    }
    for m in recipe.methods:
        ran = ev["models"][m.key].get("seeds", seeds)
        entry = model_entry(m.key, {s_: stage(s_, "transfer", m.key) for s_ in ran},
                            ("method", "label_accuracy", "diagnostics", "head_l2", "loss", "early_stopping",
                             "weak_label_calibration"))
        checks = {s_: stage(s_, "transfer", m.key).get("student") for s_ in ran}
        if all(checks.values()):
            entry["student"] = {k: float(np.mean([c[k] for c in checks.values()])) for k in
                                ("agreement_with_labels_B", "test_positive_share", "label_positive_share")}
            entry["student"]["warnings"] = [f"seed {s_}: {w}" if len(seeds) > 1 else w
                                            for s_, c in checks.items() for w in c["warnings"]]
        entry["pgr"] = ev["pgr"][m.key]
        if m.key in ev.get("vs_baseline", {}):
            entry["vs_baseline"] = ev["vs_baseline"][m.key]
        results["methods"][m.key] = entry
    if "baseline" in ev:
        results["baseline"] = ev["baseline"]
    if "test_ood" in ev:
        ood = ev["test_ood"]
        source = results["data"].get("source", {}).get("test_ood_source")
        scores = {k: {m: v[m] for m in KINDS if m in v} for k, v in ood["models"].items()}
        results["test_ood"] = {"n_test": ood["n_test"], "source": source, "models": scores, "pgr": ood["pgr"],
                               **({"vs_baseline": ood["vs_baseline"]} if "vs_baseline" in ood else {})}
    theory = run_dir / "theory" / "metrics.json"
    if recipe.theory.enabled and theory.exists():
        results["theory"] = read_json(theory)
    write_json(run_dir / "results.json", results)
    return results


def _fmt(entry: dict, pct: bool = True) -> str:
    if entry is None or entry.get("value") is None:
        return "undefined"
    scale = 100 if pct else 1
    lo, hi = entry["ci95"]
    digits = 1 if pct else 2
    return f"{entry['value'] * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def _rows(results: dict) -> list[tuple[str, dict]]:
    w = results["weak"]
    src = w.get("trained_on") or {}
    own = ", trained on " + " ".join(str(src[k]) for k in ("name", "path", "where") if src.get(k)) if src else ""
    rows = [(f"weak ({w.get('model')}, {w.get('mode')}{own})", w)]
    oracle = " [oracle selection]" if results.get("oracle_selection") else ""
    rows += [(f"transfer: {k}" + (f" ({v['loss']})" if v.get("loss", "xent") != "xent" else "") + oracle, v)
             for k, v in results["methods"].items()]
    rows.append((f"strong ceiling ({results['ceiling'].get('model')}, {results['ceiling'].get('mode')})",
                 results["ceiling"]))
    return rows


def plot(results: dict, run_dir: Path) -> list[str]:
    plt = pyplot()
    rows = _rows(results)
    seeds = results.get("seeds") or [0]
    colors = ["#888888"] + ["#3b75af"] * (len(rows) - 2) + ["#2ca02c"]
    kinds = kinds_of(results)
    fig, axes = plt.subplots(len(kinds) + 1, 1, figsize=(2.5 + 1.25 * len(rows), 4 * len(kinds) + 3.5),
                             squeeze=False, gridspec_kw={"height_ratios": [4] * len(kinds) + [3]})
    what = {"preference": "preference accuracy", "generation": "exact-match accuracy"}.get(
        results.get("config", {}).get("task"), "accuracy")
    for ax, kind, title in zip(axes[:, 0], kinds, (f"test {what}", "test AUROC")):
        vals = [r[kind]["value"] * 100 for _, r in rows]
        err = [[(r[kind]["value"] - r[kind]["ci95"][0]) * 100 for _, r in rows],
               [(r[kind]["ci95"][1] - r[kind]["value"]) * 100 for _, r in rows]]
        lo = max(0, min(r[kind]["ci95"][0] for _, r in rows) * 100 - 8)
        partial = [len(seeds) > 1 and len(r.get("seeds", seeds)) < len(seeds) for _, r in rows]
        bars = ax.bar(range(len(rows)), vals, yerr=err, color=colors, capsize=4)
        for bar, few in zip(bars, partial):  # a subset of the seeds: not comparable with the mean bars
            if few:
                bar.set_facecolor("#a9c4de")
                bar.set_hatch("//")
        for level, style in ((vals[0], ":"), (vals[-1], "--")):  # the gap PGR is measured against
            ax.axhline(level, color="#444444", linestyle=style, linewidth=0.8)
        for i, v in enumerate(vals):
            ax.text(i, lo + 0.6, f"{v:.1f}", ha="center", va="bottom", fontsize=9, weight="bold",
                    color="#1f3550" if partial[i] else "white", backgroundcolor="white" if partial[i] else "none")
        names = []
        for name, r in rows:
            label = name.replace("transfer: ", "").replace(" (", "\n(")
            if len(seeds) > 1 and len(r.get("seeds", seeds)) < len(seeds):
                label += f"\n(seed {', '.join(map(str, r['seeds']))} only)"
            pgr = (r.get("pgr") or {}).get(kind)
            if pgr is not None:
                label += "\nPGR " + ("undefined" if pgr["value"] is None else f"{pgr['value']:.2f}")
            names.append(label)
        ax.set_ylim(lo, min(100, max(r[kind]["ci95"][1] for _, r in rows) * 100 + 3))
        ax.set_xticks(range(len(rows)), names, fontsize=7)
        ax.set_ylabel(f"{title} (%)" + (f"\naxis starts at {lo:.0f}, not 0" if lo > 0 else ""), fontsize=8)
        over = f"mean of {len(seeds)} seeds, two-level " if len(seeds) > 1 else ""
        ax.set_title(f"{title}, {over}{int(results['ci_level'] * 100)}% bootstrap CI (n={results['n_test']})",
                     fontsize=9)
    _pgr_panel(axes[-1, 0], results, kinds[0])
    fig.suptitle(f"{results['name']}: weak → strong", fontsize=11)
    fig.tight_layout()
    return [save(fig, run_dir, "accuracy.png")]


def _pgr_panel(ax, results: dict, kind: str) -> None:
    """PGR of every method as a quantity: points with their intervals, 0 (the weak model) and 1 (the
    ceiling) drawn; an undefined PGR is written where its point would be."""
    keys = list(results["methods"])
    lvl = int(results["ci_level"] * 100)
    seeds = results.get("seeds") or [0]
    for i, key in enumerate(keys):
        p = results["methods"][key]["pgr"][kind]
        if p.get("value") is None:
            ax.text(i, 0.5, "undefined", ha="center", va="center", fontsize=8, color="#888888")
            continue
        lo, hi = p["ci95"]
        ax.errorbar(i, p["value"], yerr=[[p["value"] - lo], [hi - p["value"]]], fmt="o", color="#3b75af",
                    capsize=4)
        ax.text(i + 0.08, p["value"], f"{p['value']:.2f}", fontsize=8, va="center")
    ax.axhline(0, color="#444444", linestyle=":", linewidth=0.8)
    ax.axhline(1, color="#444444", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(keys)), [k + (f"\n(seed {', '.join(map(str, results['methods'][k]['seeds']))} only)"
                                          if len(results["methods"][k].get("seeds", seeds)) < len(seeds) else "")
                                      for k in keys], fontsize=7)
    ax.set_xlim(-0.5, len(keys) - 0.5)
    ax.set_ylabel(f"PGR ({kind})")
    ax.set_title(f"performance gap recovered, {lvl}% interval (0: weak model, 1: ceiling)", fontsize=9)


def _short(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _std(entry: dict, scale: float) -> str:
    std = (entry or {}).get("std") if "std" in (entry or {}) else (entry or {}).get("std_of_seeds")
    return f" ± {std * scale:.{1 if scale == 100 else 2}f}" if std is not None else ""


def _per_seed_section(results: dict) -> list[str]:
    seeds = results.get("seeds", [])
    if len(seeds) < 2:
        return []
    lines = ["", "### Per seed", "", "| model | " + " | ".join(f"seed {s}: acc / PGR" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for name, r in _rows(results):
        ran = r.get("seeds", seeds)
        accs = dict(zip(ran, r["accuracy"].get("per_seed", [])))
        pgrs = dict(zip(ran, ((r.get("pgr") or {}).get("accuracy") or {}).get("per_seed", [None] * len(ran))))
        cells = []
        for s in seeds:
            if s not in accs:
                cells.append("not run")
                continue
            pg = pgrs.get(s)
            cells.append(f"{accs[s] * 100:.1f}" + ("" if "pgr" not in r else
                                                   f" / {pg:.2f}" if pg is not None else " / undefined"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Pooled PGR is the ratio of mean gaps, (mean transfer − mean weak) / (mean ceiling − mean weak); "
              "± is the standard deviation over seeds (of accuracy; of the per-seed PGRs for PGR)."]
    return lines


def _data_lines(manifest: dict) -> list[str]:
    """How the data was read: which value is class 1, balanced or not, rows dropped."""
    src = manifest.get("source", {})
    out = []
    if src.get("class_1"):
        out.append(f"- Class 1: {src['class_1']}.")
    if manifest.get("split") == "random":
        out.append("- Splits: drawn at random (a generation task's answers have no classes to balance)"
                   + ("; test from the data's own test split, A and B from its train split"
                      if src.get("native_splits") else "") + ".")
    if "balanced" in manifest:
        out.append("- Splits: " + ("class-balanced (Burns et al.)" if manifest["balanced"] else
                                   "the data's natural class ratio (`data.balance: false`)")
                   + ("; test drawn from the data's own test split, A and B from its train split"
                      if src.get("native_splits") else "") + ".")
    if src.get("dropped"):
        per = ", ".join(f"{k} {v['dropped']} of {v['examples']}" for k, v in src.get("pools", {}).items()
                        if v.get("dropped"))
        out.append(f"- Dropped before splitting (empty text, missing label or an unusable row): {src['dropped']} "
                   f"({per}).")
    return out + [""] if out else []


def _delta(e: dict | None, scale: float = 100) -> str:
    if e is None or e.get("value") is None:
        return "undefined"
    lo, hi = e["ci95"]
    d = 1 if scale == 100 else 2
    return f"{e['value'] * scale:+.{d}f} [{lo * scale:+.{d}f}, {hi * scale:+.{d}f}]"


def _subset_section(results: dict, rows: list, kinds: tuple) -> list[str]:
    """Methods run on a subset of the seeds, each beside the weak model and ceiling of its own seeds
    (their per-seed values' mean), never beside means over every seed."""
    if not rows:
        return []
    seeds = results["seeds"]
    lines = ["", "### Methods run on a subset of the seeds", "",
             "Each beside the weak model and the ceiling on the same seeds (their mean over those seeds; the "
             "method's PGR uses exactly these).", "", *_header(kinds)]
    shown = set()
    for name, r in rows:
        ran = r["seeds"]
        for ref in ("weak", "ceiling") if tuple(ran) not in shown else ():  # once per set of seeds
            ref_r = results[ref]
            vals = [f"{np.mean([ref_r[k]['per_seed'][seeds.index(s)] for s in ran]) * 100:.1f}" for k in kinds]
            lines.append(f"| {ref}, seed{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))} | "
                         + " | ".join(vals + ["—"] * len(kinds)) + " |")
        shown.add(tuple(ran))
        pgr = r["pgr"]
        cells = ([f"{_fmt(r[k])}{_std(r[k], 100)}" for k in kinds]
                 + [_fmt(pgr[k], pct=False) + _std(pgr[k], 1) for k in kinds])
        lines.append(f"| **{name}**, seed{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))} | "
                     + " | ".join(cells) + " |")
    return lines


def _paired_section(results: dict, pairs: dict | None = None, where: str = "test") -> list[str]:
    """Every method against the baseline, paired: the table and, in words, which beat it."""
    base = results.get("baseline")
    pairs = pairs if pairs is not None else {k: v["vs_baseline"] for k, v in results["methods"].items()
                                             if "vs_baseline" in v}
    if not base or not pairs:
        return []
    kinds = kinds_of(results)
    seeds = results.get("seeds") or [0]
    lvl = int(results["ci_level"] * 100)
    cols = [f"Δ {TITLES[k].replace(' (%)', '')} (points)" for k in kinds] + [
        f"Δ PGR ({k if k != 'auroc' else 'AUROC'})" for k in kinds]
    many = len(seeds) > 1
    lines = ["", f"### Against `{base}`, paired ({where})", "",
             f"Each method minus `{base}` on the seeds both ran, with {lvl}% intervals from the same bootstrap "
             "resamples for both (the same " + ("seeds and " if many else "") + "test examples), so the "
             "noise they share cancels.", "",
             "| method | " + " | ".join(cols) + (" | better on seeds |" if many else " |"),
             "|---|" + "---|" * (len(cols) + many)]
    verdicts = {"better": [], "worse": [], "unclear": []}
    for key, p in pairs.items():
        if "seeds" not in p or not p["seeds"]:
            continue
        cells = [_delta(p[k]) for k in kinds] + [_delta(p.get(f"pgr_{k}"), 1) for k in kinds]
        few = len(p["seeds"]) < len(seeds)
        name = f"{key}" + (f" (seed{'s' if len(p['seeds']) > 1 else ''} {', '.join(map(str, p['seeds']))})"
                           if few else "")
        extra = f" | {p[kinds[0]]['better_on_seeds']} of {len(p['seeds'])}" if many else ""
        lines.append(f"| {name} | " + " | ".join(cells) + extra + " |")
        verdicts[p["verdict"]].append(f"`{key}`")
    said = [f"- Better than `{base}` ({kinds[0]} interval above 0): {', '.join(verdicts['better']) or 'none'}.",
            f"- Worse than `{base}` (interval below 0): {', '.join(verdicts['worse']) or 'none'}."]
    if verdicts["unclear"]:
        said.append(f"- No clear difference (interval includes 0): {', '.join(verdicts['unclear'])}.")
    ranked = [(p[kinds[0]]["value"], k) for k, p in pairs.items() if p.get("seeds")]
    if ranked:
        top = max(v for v, _ in ranked)
        best = ", ".join(f"`{k}`" for v, k in ranked if v == top)
        said.append(f"- Highest {kinds[0]}: {best} ({top * 100:+.1f} points against `{base}`"
                    + ("" if top > 0 else f"; no method is above `{base}`") + ").")
    return lines + [""] + said


def _shifted_section(results: dict) -> list[str]:
    ood = results.get("test_ood")
    if not ood:
        return []
    lines = ["", f"### Shifted test set ({ood.get('source') or 'test_ood'}, n = {ood['n_test']})", "",
             "Every model scored on the shifted test set; PGR there uses the weak model's and the ceiling's "
             "accuracy on it.", "",
             *_header(kinds_of(results))]
    seeds = results.get("seeds") or [0]
    order = ["weak", *results["methods"], "ceiling"]  # the order of _rows, whose names the main table uses
    for key, (name, r) in zip(order, _rows(results)):
        m = ood["models"].get(key)
        if m is None:
            continue
        few = r.get("seeds")
        if few is not None and len(seeds) > 1 and len(few) < len(seeds):
            name += f" (seed{'s' if len(few) > 1 else ''} {', '.join(map(str, few))} only)"
        pgr = ood["pgr"].get(key)
        kinds = kinds_of(results)
        cells = [_fmt(m[k]) for k in kinds] + [_fmt(pgr[k], pct=False) if pgr else "—" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict, images: list[str]) -> str:
    lvl = int(results["ci_level"] * 100)
    w = results["weak"]
    seeds = results.get("seeds") or [results.get("seed", 0)]
    if len(seeds) > 1:
        vary = results.get("env", {}).get("vary_split")
        split = "one A/B/test split per seed" if vary else "one shared A/B/test split"
        stats = (f"Training seeds {', '.join(map(str, seeds))} ({split}): values are means over seeds, ± their "
                 f"standard deviation; brackets are {lvl}% two-level bootstrap intervals ({results['n_bootstrap']} "
                 "resamples, each drawing the seeds and the test examples with replacement), so they carry both "
                 "seed-to-seed and test-sampling noise.")
    else:
        stats = (f"One training seed ({seeds[0]}); brackets are {lvl}% paired-bootstrap intervals "
                 f"({results['n_bootstrap']} resamples of the test set).")
    lines = [
        f"# Weak-to-strong report: {results['name']}",
        "",
        f"Dataset: {results['data'].get('summary', '?')}. Test split: n = {results['n_test']}. {stats}",
        "",
    ]
    task = results.get("config", {}).get("task")
    if task == "preference":
        lines += ["- Task: reward modelling on preference pairs (Bradley–Terry): accuracy is preference accuracy "
                  "(the preferred response gets the higher reward), AUROC that of σ(r_A − r_B)."]
    elif task == "generation":
        g = results["config"].get("generation", {})
        lines += [f"- Task: generation: accuracy is the share of test questions whose greedy answer (at most "
                  f"{g.get('max_new_tokens')} new tokens) the `{results['weak'].get('checker', g.get('checker'))}` "
                  "checker accepts against the reference (exact match after normalisation); there is no AUROC."]
    lines += _data_lines(results.get("data", {}))
    warned = [(k, w) for k, r in results["methods"].items() for w in (r.get("student") or {}).get("warnings", [])]
    if warned:
        lines += ["**Warnings: degenerate students.** Their numbers below are not weak-to-strong results:", ""]
        lines += [f"- `{k}`: {w}." for k, w in warned] + [""]
    if results.get("oracle_selection"):
        lines += ["**Oracle model selection.** Checkpoints were selected on ground-truth labels of a held-out "
                  "slice (`early_stopping.select_on: gold`). No weak-to-strong setting has those labels: treat "
                  "the transfer numbers below as an upper bound, not a result.", ""]
    kinds = kinds_of(results)
    lines += _header(kinds)

    def partial(r):
        return len(seeds) > 1 and len(r.get("seeds", seeds)) < len(seeds)

    for name, r in _rows(results):
        if partial(r):  # not beside means over every seed: their own table below
            continue
        pgr = r.get("pgr")
        cells = ([f"{_fmt(r[k])}{_std(r[k], 100)}" for k in kinds]
                 + [_fmt(pgr[k], pct=False) + _std(pgr[k], 1) if pgr else "—" for k in kinds])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fixed = [who for who in ("weak", "ceiling") if results[who].get("mode") == "head"
             and not results[who]["accuracy"].get("std")]
    if len(seeds) > 1 and fixed:
        lines += ["", f"The head-mode {' and '.join(fixed)}'s ± is 0: frozen features and the exact (Newton) fit "
                      "of a linear head do not depend on the training seed, so every seed trains the same model."]
    lines += _subset_section(results, [(n, r) for n, r in _rows(results) if partial(r)], kinds)
    lines += _paired_section(results)
    lines += _shifted_section(results)
    if results.get("test_ood", {}).get("vs_baseline"):
        lines += _paired_section(results, results["test_ood"]["vs_baseline"], "shifted test set")
    lines += _per_seed_section(results)
    lines += [
        "",
        "**How to read PGR.** Performance gap recovered = (transfer − weak) / (ceiling − weak) "
        "(Burns et al. 2023): 0 means the strong student trained on weak labels is no better than its weak "
        "supervisor, 1 means it matches the strong model trained on ground truth. Values can fall below 0 "
        "or above 1. The interval resamples the test examples jointly for all models; when the ceiling − weak "
        "gap itself is not clearly above 0, PGR is reported as undefined instead of a ratio of noise.",
        "",
    ]
    for key, r in results["methods"].items():
        for kind in kinds:
            p = r["pgr"][kind]
            if p.get("value") is None and p.get("reason"):
                lines.append(f"- PGR ({kind}) of `{key}` undefined: {p['reason']}.")
    lines += [
        "## Labels",
        "",
        f"- Weak labels on the transfer set B: accuracy {w.get('transfer_label_accuracy', float('nan')) * 100:.1f}% "
        f"against B's ground truth{' (mean over seeds)' if len(seeds) > 1 else ''} (used for this report only, "
        "never for training).",
    ]
    q = w.get("soft_label_quantiles")
    if q:
        lines.append("- Weak confidence: P(class 1) quantiles 5/25/50/75/95% = "
                     + " / ".join(f"{q[k]:.2f}" for k in sorted(q, key=float)) + ".")
    if "transfer_label_ece" in w:
        lines.append(f"- Weak calibration: expected calibration error (15 bins) {w['transfer_label_ece']:.3f} on B, "
                     f"{w['test_ece']:.3f} on test (0: its confidence matches its accuracy).")
    for key, r in results["methods"].items():
        scalars = {k: v for k, v in (r.get("diagnostics") or {}).items() if not isinstance(v, (list, dict))}
        lines.append(f"- `{key}` ({r.get('method')}, loss {r.get('loss', 'xent')}): trained on labels with accuracy "
                     f"{r.get('label_accuracy', float('nan')) * 100:.1f}% on B"
                     + (f" (diagnostics below: seed {r['seeds'][0]})" if len(seeds) > 1 and scalars else ""))
        st = r.get("student")
        if st:
            lines.append(f"  - student: agrees with its training labels on {st['agreement_with_labels_B']:.1%} of B; "
                         f"predicts class 1 for {st['test_positive_share']:.1%} of test (its labels: "
                         f"{st['label_positive_share']:.1%})")
        cal = r.get("weak_label_calibration")
        if cal:
            lines.append(f"  - weak labels temperature-scaled, T = {cal['temperature']:.2f} (fitted out of sample "
                         f"on A, {cal['folds']} folds): ECE on B {cal['ece_B_before']:.3f} → {cal['ece_B_after']:.3f}")
        es = r.get("early_stopping")
        if es:
            lines.append(f"  - early stopping ({'ORACLE: ground truth' if es.get('oracle') else 'training labels'}): "
                         f"best {es['metric']} {es.get('best_' + es['metric'], float('nan')):.4f} at step "
                         f"{es['best_step']}{', stopped early' if es.get('stopped_early') else ''}")
        lines += [f"  - {k.replace('_', ' ')}: {_short(v)}" for k, v in scalars.items()]
    for key, r in results["methods"].items():
        hook = getattr(METHODS.get(r.get("method")), "report_lines", None)
        if hook:
            lines += hook(key, r, results)
    lines += ["", f"Model selection: {results['model_selection']}.", ""]
    lines += [f"![{img[:-4]}]({img})" for img in images]
    if "theory" in results:
        lines += ["", markdown_section(results["theory"], rel_dir="theory")]
    lines += ["", "## Run", "", "| stage | wall time (s) | this invocation |", "|---|---|---|"]
    for stage, t in results["stages"].items():
        secs = t.get("wall_time_s")
        state = "cached" if t.get("cached") else "ran" + (
            f", resumed from its checkpoint at step {t['resumed_from_step']}" if t.get("resumed_from_step") else "")
        lines.append(f"| {stage} | {secs if secs is not None else '?'} | {state} |")
    env = results.get("env", {})
    v = env.get("versions", {})
    dirty = "+dirty" if env.get("git_dirty") else ""
    lines += ["", f"w2s {env.get('w2s')} (git {str(env.get('git_commit'))[:10]}{dirty}), "
              f"Python {env.get('python')}, torch {v.get('torch')}, transformers {v.get('transformers')}, "
              f"device {env.get('device')} × {env.get('num_processes')} process(es), "
              f"mixed precision {env.get('mixed_precision')}.",
              "", "Full numbers: `results.json`; resolved recipe: `config.yaml`.", ""]
    return "\n".join(lines)


def render(results: dict, run_dir: Path) -> None:
    images = plot(results, run_dir)
    for key, r in results["methods"].items():
        hook = getattr(METHODS.get(r.get("method")), "plots", None)
        if hook:
            images += hook(key, r, run_dir)
    write_text(run_dir / "report.md", markdown(results, images))


def read_results(run_dir: Path) -> dict:
    """A finished run's results.json (`w2s report`), or a UserError saying what is missing."""
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise UserError(f"{path} not found", "pass a finished run directory, e.g. runs/quickstart")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    if problem := format_problem(run_dir):
        raise UserError(problem, "render it with the w2s version that made it, or rerun its recipe with this one "
                                 "(w2s run RECIPE --force, or a new name)")
    return results


def run(job: Job) -> dict:
    if job.is_main:
        results = collect(job.run, job.recipe, job.timings)
        render(results, job.run.root)
    return {"summary": str(job.run.root / "report.md")}


STAGE = Stage(name="report", inputs=("evaluate", "theory"), units=once, key=lambda r, u: [],
              folder=lambda run, unit: run.root, run=run, cached=False)
