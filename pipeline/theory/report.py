"""Theory stage output: checks of predictions P1-P12 (docs/THEORY.md §4), plots and the report's markdown section.

Everything here reads the metrics dict only (as written to metrics.json), so a report can be re-rendered later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # headless: plots are files
import matplotlib.pyplot as plt  # noqa: E402

PREDICTION_IDS = [f"P{i}" for i in range(1, 13)]


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _count(frac: float, n: int) -> str:
    return f"{round(frac * n)}/{n}"


def _rho_entry(entries: list[dict], rho: float) -> dict | None:
    return next((e for e in entries if abs(e["rho"] - rho) < 1e-9), None)


def _rhos(entries: list[dict]) -> str:
    return ", ".join(f"{e['rho']:g}" for e in entries)


def _not_run(why: str) -> tuple[None, str]:
    return None, f"not run: {why}"


# Setting 1 (two-layer ReLU net; arXiv 2605.12908). Each check returns (held, one-line text with the numbers).

def _p1(m: dict):
    es = m.get("two_layer") or []
    if not es:
        return _not_run("setting 1 disabled")
    held = all(e["w2s_beats_weak_frac"] >= 0.9 for e in es)
    counts = ", ".join(_count(e["w2s_beats_weak_frac"], e["n_seeds"]) for e in es)
    return held, (f"W2S calibrated error < weak teacher's in {counts} seeds at rho = {_rhos(es)} "
                  f"(need >= 90% each; mean {', '.join(_fmt(e['w2s_err_cal']) for e in es)} vs weak "
                  f"{_fmt(es[0]['weak_err_cal'])})")


def _p2(m: dict):
    es = m.get("two_layer") or []
    if not es:
        return _not_run("setting 1 disabled")
    pgrs = [e["pgr_cal_median"] for e in es]
    ceiling = max(e["ceiling_err_cal"] for e in es)
    held = all(p is not None and 0.15 <= p <= 0.6 for p in pgrs) and ceiling <= 0.05
    return held, (f"median PGR_cal {', '.join(_fmt(p, 2) for p in pgrs)} at rho = {_rhos(es)} (need 0.15-0.6); "
                  f"ceiling calibrated error <= {_fmt(ceiling)} (need <= 0.05)")


def _p3(m: dict):
    e = _rho_entry(m.get("two_layer") or [], 0.0)
    if e is None:
        return _not_run("needs rho = 0 in theory.two_layer.rhos")
    held = e["retention_w2s"] >= 0.98 and e["retention_sft"] >= 0.98
    return held, (f"rho = 0: retention W2S {_fmt(e['retention_w2s'])}, SFT {_fmt(e['retention_sft'])} "
                  f"(need >= 0.98 both: no forgetting without correlation)")


def _p4(m: dict):
    es = [e for e in m.get("two_layer") or [] if e["rho"] >= 0.5]
    if not es:
        return _not_run("needs some rho >= 0.5 in theory.two_layer.rhos")
    held = all(e["retention_sft"] <= 0.85 and e["retention_w2s"] >= 0.88 and e["retention_w2s_gt_sft_frac"] == 1.0
               and e["retention_gap_ge_0p1_frac"] >= 0.8 for e in es)
    parts = [f"rho = {e['rho']:g}: SFT {_fmt(e['retention_sft'])} vs W2S {_fmt(e['retention_w2s'])}, "
             f"W2S > SFT in {_count(e['retention_w2s_gt_sft_frac'], e['n_seeds'])}, gap >= 0.10 in "
             f"{_count(e['retention_gap_ge_0p1_frac'], e['n_seeds'])}" for e in es]
    return held, "; ".join(parts) + " (need SFT <= 0.85, W2S >= 0.88, all seeds W2S > SFT, gap in >= 80%)"


def _p5(m: dict):
    es = [e for e in m.get("two_layer") or [] if e["rho"] >= 0.5]
    if not es:
        return _not_run("needs some rho >= 0.5 in theory.two_layer.rhos")
    held = all(e["subspace_frac_sft"] < e["subspace_frac_w2s"] for e in es)
    parts = [f"rho = {e['rho']:g}: SFT {_fmt(e['subspace_frac_sft'])} vs W2S {_fmt(e['subspace_frac_w2s'])}"
             for e in es]
    return held, "off-target subspace fraction " + "; ".join(parts) + " (need SFT < W2S)"


def _p6(m: dict):
    e = _rho_entry(m.get("two_layer") or [], 0.0)
    if e is None:
        return _not_run("needs rho = 0 in theory.two_layer.rhos")
    held = (e["target_align_w2s"] >= max(0.40, e["target_align_pre"])
            and e["target_align_sft"] >= max(0.5, e["target_align_pre"]))
    return held, (f"rho = 0: target-group |cos(w, u_0)| {_fmt(e['target_align_pre'], 2)} -> W2S "
                  f"{_fmt(e['target_align_w2s'])}, SFT {_fmt(e['target_align_sft'])} (need >= 0.40 / >= 0.5)")


def _p7(m: dict):
    a = m.get("two_layer_ablation")
    if not a:
        return _not_run("ablation disabled (theory.two_layer.ablation)")
    main = _rho_entry(m.get("two_layer") or [], a["rho"])
    ceiling_up = main is None or a["ceiling_err_cal"] > main["ceiling_err_cal"]
    held = (a["target_align_w2s"] < 0.15 and a["target_align_sft"] < 0.15 and ceiling_up
            and a["retention_sft"] < 0.98 and a["w2s_err_cal"] < a["weak_err_cal"])
    ref = "" if main is None else f" vs {_fmt(main['ceiling_err_cal'])} in the main run"
    return held, (f"alpha_target = {a['alpha_target']:g}, rho = {a['rho']:g}, {a['n_seeds']} seeds: |cos(w, u_0)| "
                  f"W2S {_fmt(a['target_align_w2s'])}, SFT {_fmt(a['target_align_sft'])} (need < 0.15); ceiling "
                  f"error {_fmt(a['ceiling_err_cal'])}{ref} (need higher); SFT retention "
                  f"{_fmt(a['retention_sft'])} (need < 0.98); W2S {_fmt(a['w2s_err_cal'])} vs weak "
                  f"{_fmt(a['weak_err_cal'])} calibrated (need lower)")


# Setting 2 (linear logistic regression; arXiv 2605.05742).

def _logistic(m: dict, sweep: str, covariance: str | None = "isotropic", label_type: str | None = "soft"):
    return [e for e in m.get("logistic") or [] if sweep in e["sweeps"]
            and covariance in (None, e["covariance"]) and label_type in (None, e["label_type"])]


def _p8(m: dict):
    es = {round(e["c_teacher"], 9): e for e in _logistic(m, "c_teacher")}
    need = {0.4: 0.8, 0.6: 0.9, 0.8: 0.9}
    found = {c: es[c] for c in need if c in es}
    if not found:
        return _not_run("needs c_T in {0.4, 0.6, 0.8} in theory.logistic.c_teachers")
    held = all(e["frac_beats_both"] >= need[c] for c, e in found.items())
    parts = [f"c_T = {c:g}: {_fmt(e['frac_beats_both'], 2)} (need >= {need[c]:g})" for c, e in found.items()]
    return held, "gamma = 0, best-along-path beats teacher and init: " + "; ".join(parts)


def _p9(m: dict):
    es = [e for e in _logistic(m, "gamma") if e["condition_margin"] <= 0]
    if not es:
        return _not_run("no gamma in theory.logistic.gammas violates the first-order condition")
    held = all(e["frac_beats_both"] <= 0.1 for e in es)
    parts = [f"gamma = {e['gamma']:g}: {_fmt(e['frac_beats_both'], 2)}" for e in es]
    return held, ("where cos(S0,w*)·cos(S0,T) >= cos(T,w*), fraction beating both " + "; ".join(parts)
                  + " (need <= 0.10)")


def _p10(m: dict):
    es = [e for e in m.get("logistic") or [] if e["label_type"] == "soft"]
    if not es:
        return _not_run("no soft-label configuration")
    gap = max(e["final_teacher_gap_max"] for e in es)
    beats = max(e["frac_final_beats_teacher"] for e in es)
    held = gap <= 0.005
    return held, (f"soft labels, after {m.get('config', {}).get('logistic', {}).get('steps', '?')} steps: "
                  f"max |err_final - err_teacher| = {gap:.4f} over {len(es)} configurations x pairs "
                  f"(need <= 0.005); fraction of pairs ending better than the teacher <= {_fmt(beats, 2)}")


def _p11(m: dict):
    es = sorted(_logistic(m, "init_norm"), key=lambda e: e["init_norm"])
    if not es:
        return _not_run("init-norm sweep empty")
    ok = []
    for e in es:
        n = e["init_norm"]
        if n <= 0.1:
            ok.append(e["frac_beats_both"] <= 0.1)
        if n >= 0.5:
            ok.append(e["frac_beats_both"] >= 0.9)
        if n >= 10:
            ok.append(e["frac_beats_both_at_t"] >= 0.8)
        elif n <= 3:
            ok.append(e["frac_beats_both_at_t"] <= 0.1)
    t = es[0]["early_step"]
    parts = [f"{e['init_norm']:g}: {_fmt(e['frac_beats_both'], 2)} / {_fmt(e['frac_beats_both_at_t'], 2)}" for e in es]
    return all(ok), (f"||w_S0|| -> fraction beating both (best / at t = {t}): " + "; ".join(parts)
                     + " (need <= 0.1 at 0.1, >= 0.9 from 0.5; at t: >= 0.8 at 10, <= 0.1 up to 3)")


def _p12(m: dict):
    es = _logistic(m, "covariance", covariance=None, label_type=None)
    pairs = []
    for label in dict.fromkeys(e["label_type"] for e in es):
        by_cov = {e["covariance"]: e for e in es if e["label_type"] == label}
        if {"isotropic", "anisotropic"} <= by_cov.keys():
            pairs.append((label, by_cov["anisotropic"], by_cov["isotropic"]))
    if not pairs:
        return _not_run("needs both covariances in theory.logistic.covariances")
    held = all(a["frac_beats_both"] < i["frac_beats_both"] for _, a, i in pairs)
    parts = [f"{label} labels: anisotropic {_fmt(a['frac_beats_both'], 2)} vs isotropic {_fmt(i['frac_beats_both'], 2)}"
             for label, a, i in pairs]
    return held, "fraction beating both, " + "; ".join(parts) + " (need anisotropic < isotropic)"


CHECKS: dict[str, Callable[[dict], tuple]] = dict(zip(PREDICTION_IDS, (
    _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12)))


def check_predictions(metrics: dict) -> list[dict]:
    """P1-P12 of docs/THEORY.md §4 against the metrics: held true/false, or null where the setting was not run."""
    out = []
    for pid, check in CHECKS.items():
        held, text = check(metrics)
        out.append({"id": pid, "held": None if held is None else bool(held), "text": text})
    return out


def make_plots(metrics: dict, out_dir: Path) -> list[str]:
    """Write the stage's PNGs into out_dir; returns the file names written."""
    out_dir = Path(out_dir)
    written = []
    if metrics.get("two_layer"):
        _plot_two_layer(metrics["two_layer"], out_dir / "retention_vs_rho.png")
        written.append("retention_vs_rho.png")
    if _logistic(metrics, "gamma") or _logistic(metrics, "init_norm"):
        _plot_logistic(metrics, out_dir / "logistic_error_curves.png")
        written.append("logistic_error_curves.png")
    return written


def _plot_two_layer(entries: list[dict], path: Path) -> None:
    rhos = [e["rho"] for e in entries]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, label, color in (("w2s", "W2S (weak labels)", "tab:blue"), ("sft", "SFT (ground truth)", "tab:red")):
        ax1.plot(rhos, [e[f"retention_{kind}"] for e in entries], "o-", color=color, label=f"{label}, mean")
        for e in entries:
            seeds = e["per_seed"][f"retention_{kind}"]
            ax1.scatter([e["rho"]] * len(seeds), seeds, s=10, alpha=0.35, color=color)
    ax1.set(xlabel="rho = <u_k, u_0> (off-target / target correlation)",
            ylabel="off-target retention (1 = no forgetting)", title="Forgetting of off-target heads")
    ax1.legend()
    for key, label, color in (("weak_err_cal", "weak teacher", "tab:gray"), ("w2s_err_cal", "W2S student", "tab:blue"),
                              ("ceiling_err_cal", "ceiling (SFT)", "tab:red")):
        ax2.plot(rhos, [e[key] for e in entries], "o-", color=color, label=label)
    ax2.set(xlabel="rho", ylabel="calibrated target error 1 - corr^2", title="Target task (mean over seeds)")
    ax2.legend()
    fig.suptitle(f"Setting 1: feature elicitation, two-layer ReLU net ({entries[0]['n_seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_logistic(metrics: dict, path: Path) -> None:
    panels = [("gamma", "gamma", "error-direction overlap gamma"), ("init_norm", "init_norm", "student init norm")]
    panels = [p for p in panels if _logistic(metrics, p[0])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (sweep, key, title) in zip(axes[0], panels):
        es = sorted(_logistic(metrics, sweep), key=lambda e: e[key])
        for e in es:
            steps = [max(s, 0.8) for s in e["curve"]["step"]]  # log axis: draw step 0 just left of step 1
            ax.plot(steps, e["curve"]["err_mean"], label=f"{key} = {e[key]:g} ({e['frac_beats_both']:.0%} beat both)")
        ax.axhline(es[0]["err_teacher"], color="k", ls="--", lw=1, label="teacher")
        ax.axhline(es[0]["err_init"], color="k", ls=":", lw=1, label="student init")
        ax.set_xscale("log")
        ax.set(xlabel="GD step (log scale; step 0 drawn at 0.8)", ylabel="test 0-1 error (mean over pairs)",
               title=f"Sweep over {title}")
        ax.legend(fontsize=7)
    fig.suptitle("Setting 2: linear logistic W2S, error along the GD path (isotropic, soft labels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_section(metrics: dict, rel_dir: str = "theory") -> str:
    """The report's '## Theory sanity check' section: predictions, compact tables, plot links."""
    preds = metrics.get("predictions") or check_predictions(metrics)
    ran = [p for p in preds if p["held"] is not None]
    lines = [
        "## Theory sanity check",
        "",
        "Two synthetic weak-to-strong settings, run in seconds on CPU. Both are reconstructions from paper abstracts "
        "(docs/THEORY.md): every size and learning rate is a reconstruction default, not a value from the papers.",
        "",
        "- **Setting 1, feature elicitation** (Awano & Suzuki, arXiv 2605.12908): a pretrained two-layer ReLU reward "
        "model with per-task subspaces is fine-tuned on a weak single-index teacher's labels (W2S) or on ground "
        "truth (SFT = ceiling); rho couples off-target task directions to the target.",
        "- **Setting 2, linear logistic regression** (Geng, Hansen, Li, arXiv 2605.05742): student and teacher are "
        "the same linear class; the student runs GD on the teacher's labels from its own better initialisation. "
        "W2S = the best point of the path beats both the teacher and the initialisation.",
        "",
        f"**Predictions: {sum(p['held'] for p in ran)}/{len(ran)} held** "
        f"({len(preds) - len(ran)} not run).",
        "",
    ]
    for p in preds:
        verdict = {True: "held", False: "**did not hold**", None: "not run"}[p["held"]]
        lines.append(f"- {p['id']} {verdict}: {p['text']}")
    lines.append("")

    if metrics.get("two_layer"):
        lines += ["### Setting 1: two-layer ReLU net", "",
                  "| rho | seeds | weak err (cal) | W2S err (cal) | ceiling err (cal) | PGR_cal median [min] | "
                  "W2S < weak (cal) | retention W2S / SFT | subspace frac W2S / SFT | target align pre / W2S / SFT |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        rows = list(metrics["two_layer"])
        if metrics.get("two_layer_ablation"):
            rows.append({**metrics["two_layer_ablation"], "label": "ablation"})
        for e in rows:
            rho = f"{e['rho']:g}" + (f" (ablation, alpha_target = {e['alpha_target']:g})" if "label" in e else "")
            lines.append(
                f"| {rho} | {e['n_seeds']} | {_fmt(e['weak_err'])} ({_fmt(e['weak_err_cal'])}) | {_fmt(e['w2s_err'])} "
                f"({_fmt(e['w2s_err_cal'])}) | {_fmt(e['ceiling_err'])} ({_fmt(e['ceiling_err_cal'])}) | "
                f"{_fmt(e['pgr_cal_median'], 2)} [{_fmt(e['pgr_cal_min'], 2)}] | "
                f"{_count(e['w2s_beats_weak_frac'], e['n_seeds'])} | {_fmt(e['retention_w2s'])} / "
                f"{_fmt(e['retention_sft'])} | {_fmt(e['subspace_frac_w2s'])} / {_fmt(e['subspace_frac_sft'])} | "
                f"{_fmt(e['target_align_pre'], 2)} / {_fmt(e['target_align_w2s'], 2)} / "
                f"{_fmt(e['target_align_sft'], 2)} |")
        lines += ["", f"![Setting 1: retention and target error against rho]({rel_dir}/retention_vs_rho.png)", ""]

    if metrics.get("logistic"):
        lines += ["### Setting 2: linear logistic regression", "",
                  "| gamma | c_T | init norm | covariance | labels | st_cos | P(best beats both) | "
                  f"P(beats both at t = {metrics['logistic'][0]['early_step']}) | err init / teacher / best / final |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in metrics["logistic"]:
            lines.append(
                f"| {e['gamma']:g} | {e['c_teacher']:g} | {e['init_norm']:g} | {e['covariance']} | {e['label_type']} | "
                f"{e['st_cos']:.2f} | {e['frac_beats_both']:.2f} | {e['frac_beats_both_at_t']:.2f} | "
                f"{_fmt(e['err_init'])} / {_fmt(e['err_teacher'])} / {_fmt(e['err_best'])} / "
                f"{_fmt(e['err_final'])} |")
        lines += ["", f"![Setting 2: error along the GD path]({rel_dir}/logistic_error_curves.png)", ""]
    if "wall_time_s" in metrics:
        lines += [f"Wall time of the stage: {metrics['wall_time_s']:.1f} s.", ""]
    return "\n".join(lines)
