"""Report stage: stage outputs -> results.json -> report.md + PNG plots.

`render` reads results.json only, so `w2s report RUN_DIR` re-renders a finished run.
"""

import json
from pathlib import Path

import numpy as np

from pipeline.runner import read_json, write_json


def _stage_json(path: Path) -> dict:
    return read_json(path) if path.exists() else {}


def collect(run_dir: Path, recipe, timings: dict) -> dict:
    """Assemble results.json from the stages' metrics.json files."""
    from pipeline.config import to_dict

    seed_dir = run_dir / f"seed{recipe.seed}"
    ev = read_json(run_dir / "evaluate" / "metrics.json")
    weak = _stage_json(seed_dir / "weak" / "metrics.json")
    ceil = _stage_json(seed_dir / "ceiling" / "metrics.json")

    def model_entry(name: str, stage: dict, keep: tuple) -> dict:
        entry = {k: ev["models"][name][k] for k in ("accuracy", "auroc")}
        entry.update({k: stage[k] for k in keep if k in stage})
        return entry

    results = {
        "name": recipe.name,
        "seed": recipe.seed,
        "data": _stage_json(run_dir / "data" / "metrics.json"),
        "n_test": ev["n_test"], "n_bootstrap": ev["n_bootstrap"], "ci_level": ev["ci_level"],
        "weak": model_entry("weak", weak, ("model", "mode", "transfer_label_accuracy", "soft_label_quantiles",
                                           "head_l2")),
        "ceiling": model_entry("ceiling", ceil, ("model", "mode", "head_l2")),
        "methods": {},
        "model_selection": "none: fixed number of epochs (head mode: L2 by CV on the head's own training labels)",
        "stages": timings,
        "config": to_dict(recipe),
        "env": {**_stage_json(run_dir / "env.json"), "seed": recipe.seed, "data_seed": recipe.data.seed,
                "stage_wall_time_s": {k: v.get("wall_time_s") for k, v in timings.items()}},
    }
    for m in recipe.methods:
        stage = _stage_json(seed_dir / "transfer" / m.key / "metrics.json")
        entry = model_entry(m.key, stage, ("method", "label_accuracy", "diagnostics", "head_l2"))
        entry["pgr"] = ev["pgr"][m.key]
        results["methods"][m.key] = entry
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
    rows = [(f"weak ({results['weak'].get('model')}, {results['weak'].get('mode')})", results["weak"])]
    rows += [(f"transfer: {k}", v) for k, v in results["methods"].items()]
    rows.append((f"strong ceiling ({results['ceiling'].get('model')}, {results['ceiling'].get('mode')})",
                 results["ceiling"]))
    return rows


def plot(results: dict, run_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(results)
    colors = ["#888888"] + ["#3b75af"] * (len(rows) - 2) + ["#2ca02c"]
    fig, axes = plt.subplots(2, 1, figsize=(2.5 + 1.25 * len(rows), 8))
    for ax, kind, title in zip(axes, ("accuracy", "auroc"), ("test accuracy", "test AUROC")):
        vals = [r[kind]["value"] * 100 for _, r in rows]
        err = [[(r[kind]["value"] - r[kind]["ci95"][0]) * 100 for _, r in rows],
               [(r[kind]["ci95"][1] - r[kind]["value"]) * 100 for _, r in rows]]
        lo = max(0, min(r[kind]["ci95"][0] for _, r in rows) * 100 - 8)
        ax.bar(range(len(rows)), vals, yerr=err, color=colors, capsize=4)
        for level, style in ((vals[0], ":"), (vals[-1], "--")):  # the gap PGR is measured against
            ax.axhline(level, color="#444444", linestyle=style, linewidth=0.8)
        for i, v in enumerate(vals):
            ax.text(i, lo + 0.6, f"{v:.1f}", ha="center", va="bottom", fontsize=9, color="white", weight="bold")
        names = []
        for name, r in rows:
            label = name.replace("transfer: ", "").replace(" (", "\n(")
            pgr = (r.get("pgr") or {}).get(kind)
            if pgr is not None:
                label += "\nPGR " + ("undefined" if pgr["value"] is None else f"{pgr['value']:.2f}")
            names.append(label)
        ax.set_ylim(lo, min(100, max(r[kind]["ci95"][1] for _, r in rows) * 100 + 3))
        ax.set_xticks(range(len(rows)), names, fontsize=7)
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(f"{title}, {int(results['ci_level'] * 100)}% bootstrap CI (n={results['n_test']})", fontsize=9)
    fig.suptitle(f"{results['name']}: weak → strong", fontsize=11)
    return [_save(fig, run_dir, "accuracy.png")]


def _short(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _save(fig, run_dir: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(run_dir / name, dpi=120)
    plt.close(fig)
    return name


def plot_selective(results: dict, run_dir: Path) -> list[str]:
    """Routed share and label accuracy against the P(IK) threshold, for each selective method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for key, r in results["methods"].items():
        curve = (r.get("diagnostics") or {}).get("tau_curve_B")
        if not curve:
            continue
        d = r["diagnostics"]
        tau = [c["tau"] for c in curve]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        ax.plot(tau, [c["routed_share"] for c in curve], color="#444444", label="share of B routed to self-labels")
        for name, color in (("self_acc", "#3b75af"), ("weak_acc", "#888888")):
            ax.plot(tau, [c[name] if c[name] is not None else np.nan for c in curve], color=color,
                    label=f"{'self' if name == 'self_acc' else 'weak'}-label accuracy on the routed part")
        if d.get("tau") is not None:
            ax.axvline(d["tau"], color="#d62728", linestyle="--", label=f"chosen tau = {d['tau']:.3f}")
        ax.set_xlabel("P(IK) threshold tau")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{key}: routing on B (accuracies use B's gold, for reporting only)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        written.append(_save(fig, run_dir, f"selective_{key}.png"))
    return written


def plot_refine(results: dict, run_dir: Path) -> list[str]:
    """Refined-label accuracy on B against the number of in-context demonstrations, per calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for key, r in results["methods"].items():
        d = r.get("diagnostics") or {}
        curve = d.get("refinement_curve")
        if not curve:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4))
        x = [c["shots"] for c in curve]
        for mode, color in (("per_block", "#3b75af"), ("prior", "#2ca02c"), ("none", "#999999")):
            ax.plot(x, [c[f"accuracy_{mode}"] * 100 for c in curve], marker="o", color=color,
                    label=f"refined labels, calibration: {mode}")
        weak = curve[0].get("weak_accuracy_same_examples", d["weak_label_accuracy"])
        ax.axhline(weak * 100, color="#444444", linestyle=":", label="weak labels (same examples)")
        ax.set_xscale("symlog", base=2, linthresh=1)
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel("weak-labelled demonstrations in context (k)")
        ax.set_ylabel(f"accuracy on {curve[0]['n']} B examples (%)")
        ax.set_title(f"{key}: in-context refinement by {d.get('refiner')} (B's gold: reporting only)", fontsize=9)
        ax.legend(fontsize=7)
        written.append(_save(fig, run_dir, f"refine_{key}.png"))
    return written


def _refine_section(results: dict) -> list[str]:
    lines = []
    for key, r in results["methods"].items():
        d = r.get("diagnostics") or {}
        if "refinement_curve" not in d:
            continue
        student = results["ceiling"].get("model")
        who = ("the strong student itself" if d.get("refiner_is_student")
               else f"`{d['refiner']}`, a separate causal model (the student, `{student}`, is trained on its labels)")
        lines += ["", f"### In-context refinement: `{key}`", "",
                  f"Labels refined by {who}, {d['shots']} weak-labelled demonstrations per block of "
                  f"{d['block_size']} queries, calibration `{d['calibration']}`; scoring "
                  f"{d['scoring_examples_per_s']:.1f} examples/s ({d['scoring_tokens_per_s']:.0f} tokens/s).",
                  "", "| k | " + " | ".join(f"acc. ({m})" for m in ("none", "prior", "per_block")) + " |",
                  "|---|---|---|---|"]
        for c in d["refinement_curve"]:
            lines.append(f"| {c['shots']} | " + " | ".join(f"{c[f'accuracy_{m}'] * 100:.1f}"
                                                         for m in ("none", "prior", "per_block")) + " |")
        same = d["refinement_curve"][0].get("weak_accuracy_same_examples") if d["refinement_curve"] else None
        lines.append(f"| weak labels | {same * 100:.1f} on the same examples; {d['weak_label_accuracy'] * 100:.1f} "
                     "on all of B | | |" if same is not None else
                     f"| weak labels | {d['weak_label_accuracy'] * 100:.1f} (all of B) | | |")
        lines.append(f"\nRefined labels on all of B: {d['refined_label_accuracy'] * 100:.1f}% "
                     f"(uncalibrated {d['refined_label_accuracy_uncalibrated'] * 100:.1f}%) vs weak "
                     f"{d['weak_label_accuracy'] * 100:.1f}%.")
        po = d.get("prompt_only_test")
        if po:
            lines += ["", f"Prompt-only baseline (refiner with {po['shots']} weak demonstrations, no fine-tuning) on "
                          f"{po['n']} test items: " + ", ".join(f"{m} {po.get(f'accuracy_{m}', float('nan')) * 100:.1f}%"
                                                             for m in ("none", "prior", "per_block"))
                      + " (per_block uses the weak model's test labels for the shift, never gold)."]
    return lines


def markdown(results: dict, images: list[str]) -> str:
    lvl = int(results["ci_level"] * 100)
    w = results["weak"]
    lines = [
        f"# Weak-to-strong report: {results['name']}",
        "",
        f"Dataset: {results['data'].get('summary', '?')}. Test split: n = {results['n_test']}; "
        f"brackets are {lvl}% paired-bootstrap intervals ({results['n_bootstrap']} resamples of the test set).",
        "",
        "| model | accuracy (%) | AUROC (%) | PGR (accuracy) | PGR (AUROC) |",
        "|---|---|---|---|---|",
    ]
    for name, r in _rows(results):
        pgr = r.get("pgr")
        pa = _fmt(pgr["accuracy"], pct=False) if pgr else "—"
        pu = _fmt(pgr["auroc"], pct=False) if pgr else "—"
        lines.append(f"| {name} | {_fmt(r['accuracy'])} | {_fmt(r['auroc'])} | {pa} | {pu} |")
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
        for kind in ("accuracy", "auroc"):
            p = r["pgr"][kind]
            if p.get("value") is None and p.get("reason"):
                lines.append(f"- PGR ({kind}) of `{key}` undefined: {p['reason']}.")
    lines += [
        "## Labels",
        "",
        f"- Weak labels on the transfer set B: accuracy {w.get('transfer_label_accuracy', float('nan')) * 100:.1f}% "
        "against B's ground truth (used for this report only, never for training).",
    ]
    q = w.get("soft_label_quantiles")
    if q:
        lines.append("- Weak confidence: P(class 1) quantiles 5/25/50/75/95% = "
                     + " / ".join(f"{q[k]:.2f}" for k in sorted(q, key=float)) + ".")
    for key, r in results["methods"].items():
        scalars = {k: v for k, v in (r.get("diagnostics") or {}).items() if not isinstance(v, (list, dict))}
        lines.append(f"- `{key}` ({r.get('method')}): trained on labels with accuracy "
                     f"{r.get('label_accuracy', float('nan')) * 100:.1f}% on B")
        lines += [f"  - {k.replace('_', ' ')}: {_short(v)}" for k, v in scalars.items()]
    lines += _refine_section(results)
    lines += ["", f"Model selection: {results['model_selection']}.", ""]
    lines += [f"![{img[:-4]}]({img})" for img in images]
    if "theory" in results:
        from pipeline.theory.report import markdown_section

        lines += ["", markdown_section(results["theory"], rel_dir="theory")]
    lines += ["", "## Run", "", "| stage | wall time (s) | this invocation |", "|---|---|---|"]
    for stage, t in results["stages"].items():
        secs = t.get("wall_time_s")
        lines.append(f"| {stage} | {secs if secs is not None else '?'} | {'cached' if t.get('cached') else 'ran'} |")
    env = results.get("env", {})
    v = env.get("versions", {})
    lines += ["", f"w2s {env.get('w2s')} (git {str(env.get('git_commit'))[:10]}{'+dirty' if env.get('git_dirty') else ''}), "
              f"Python {env.get('python')}, torch {v.get('torch')}, transformers {v.get('transformers')}, "
              f"device {env.get('device')} × {env.get('num_processes')} process(es), "
              f"mixed precision {env.get('mixed_precision')}.",
              "", "Full numbers: `results.json`; resolved recipe: `config.yaml`.", ""]
    return "\n".join(lines)


def render(results: dict, run_dir: Path) -> None:
    from pipeline.runner import atomic_write

    images = plot(results, run_dir) + plot_selective(results, run_dir) + plot_refine(results, run_dir)
    text = markdown(results, images)
    atomic_write(run_dir / "report.md", lambda p: p.write_text(text))


def rerender(run_dir: Path) -> Path:
    """`w2s report RUN_DIR`: rebuild report.md and plots from results.json."""
    from pipeline.errors import UserError

    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise UserError(f"{path} not found", "pass a finished run directory, e.g. runs/quickstart")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    render(results, Path(run_dir))
    return Path(run_dir) / "report.md"
