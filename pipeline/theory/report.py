"""Theory stage output: checks of predictions P1-P14 (docs/THEORY.md §4), plots and the report's markdown section.

Everything here reads the metrics dict only (as written to metrics.json), so a report can be re-rendered later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # headless: plots are files
import matplotlib.pyplot as plt  # noqa: E402

PREDICTION_IDS = [f"P{i}" for i in range(1, 15)]


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


# Setting 3a (linear CNN -> two-layer ReLU CNN; arXiv 2510.24812).

def _cnn_runs(m: dict) -> tuple[dict | None, list[dict]]:
    """The data-abundant entry (n‖μ_h‖² > σ_p²d) and the data-scarce ones (< 1), scarce sorted by n."""
    es = m.get("cnn") or []
    abundant = next((e for e in es if e["regime"] == "abundant" and e["abundance"] > 1), None)
    scarce = sorted((e for e in es if e["regime"] == "scarce" and e["abundance"] < 1), key=lambda e: e["n"])
    return abundant, scarce


def _p13(m: dict):
    if not m.get("cnn"):
        return _not_run("setting 3a disabled")
    a, sc = _cnn_runs(m)
    if a is None or len(sc) < 2:
        return _not_run("needs theory.cnn.n_abundant with n||mu_h||^2 > sigma_p^2 d and two or more "
                        "theory.cnn.n_scarce sizes with n||mu_h||^2 < sigma_p^2 d")
    t = a["teacher_acc"]
    early = a["w2s_acc_peak"] >= t + 0.05 and a["w2s_peak_above_teacher_frac"] >= 0.9
    degrades = (a["w2s_drop"] >= 0.02 and a["w2s_drop_ge_0p01_frac"] >= 0.8 and a["ceiling_drop"] <= 0.005
                and (a["w2s_fit_wrong"] or 0.0) >= 0.99)
    lo, hi = sc[0], sc[-1]
    overfit = all(e["w2s_fit"] >= 0.97 and (e["w2s_fit_wrong"] is None or e["w2s_fit_wrong"] >= 0.8) for e in sc)
    transition = lo["w2s_acc_final"] <= t - 0.05 and hi["w2s_acc_final"] > t
    seeds = a["n_seeds"]
    return early and degrades and overfit and transition, (
        f"abundant n = {a['n']} (n||mu_h||^2/(sigma_p^2 d) = {a['abundance']:.2f}): W2S test accuracy peaks at "
        f"{_fmt(a['w2s_acc_peak'])} (step {a['w2s_peak_step']}; per-seed peak above teacher in "
        f"{_count(a['w2s_peak_above_teacher_frac'], seeds)}) vs teacher {_fmt(t)} (need >= teacher + 0.05, >= 90%), "
        f"then falls to {_fmt(a['w2s_acc_final'])} (drop {_fmt(a['w2s_drop'])}, need >= 0.02; per-seed drop >= 0.01 "
        f"in {_count(a['w2s_drop_ge_0p01_frac'], seeds)}, need >= 80%) while fitting "
        f"{_fmt(a['w2s_fit_wrong'], 2)} of the teacher's wrong labels (need >= 0.99); the ground-truth ceiling drops "
        f"{_fmt(a['ceiling_drop'])} (need <= 0.005). Scarce n = {', '.join(str(e['n']) for e in sc)} "
        f"({sc[0]['n_seeds']} seeds): W2S fits its weak labels {', '.join(_fmt(e['w2s_fit'], 2) for e in sc)} and the "
        f"teacher's wrong ones {', '.join(_fmt(e['w2s_fit_wrong'], 2) for e in sc)} (need >= 0.97 / >= 0.8: "
        f"overfitting); final accuracy {', '.join(_fmt(e['w2s_acc_final']) for e in sc)} (need <= teacher - 0.05 at "
        f"n = {lo['n']}: harmful, > teacher at n = {hi['n']}: benign)")


# Setting 3b (ridge teacher -> ridge student; arXiv 2505.18346).

def _p14(m: dict):
    es = m.get("ridge") or []
    if not es:
        return _not_run("setting 3b disabled")
    peak = [e for e in es if e["teacher_lambda_mult"] == 0.0 and abs(e["n_over_d"] - 1.0) <= 0.25]
    tuned = [e for e in es if e["teacher_lambda_mult"] == 1.0]
    if not peak or not tuned:
        return _not_run("needs 0 and 1 in theory.ridge.teacher_lambdas and some n/d in [0.75, 1.25] in "
                        "theory.ridge.n_over_d")
    iso = lambda e: e["students"]["isotropic"]  # noqa: E731
    compensates = all(iso(e)["beats_teacher_frac"] >= 0.9 and iso(e)["gain_median"] >= 0.2 for e in peak)
    no_gain = all(iso(e)["gain_median"] <= 0.02 for e in tuned)
    weighted = all(e["students"]["aligned"]["beats_teacher_frac"] >= 0.9
                   and e["students"]["aligned"]["gain_median"] >= 0.1
                   and e["students"]["misaligned"]["gain_median"] <= 0.02 for e in tuned)
    n = peak[0]["n_seeds"]
    parts_peak = "; ".join(f"n/d = {e['n_over_d']:g}: median gain {_fmt(iso(e)['gain_median'], 2)}, beats teacher "
                           f"in {_count(iso(e)['beats_teacher_frac'], n)}" for e in peak)
    aligned = lambda e: e["students"]["aligned"]  # noqa: E731
    parts_tuned = "; ".join(
        f"n/d = {e['n_over_d']:g}: isotropic {_fmt(iso(e)['gain_median'], 3)}, aligned "
        f"{_fmt(aligned(e)['gain_median'], 2)} ({_count(aligned(e)['beats_teacher_frac'], n)}), misaligned "
        f"{_fmt(e['students']['misaligned']['gain_median'], 3)}" for e in tuned)
    return compensates and no_gain and weighted, (
        f"lambda_T = 0 near the interpolation peak, best isotropic student vs teacher: {parts_peak} (need gain >= 0.20 "
        f"and >= 90%). lambda_T = lambda_opt, median relative gain of the best student: {parts_tuned} (need isotropic "
        f"<= 0.02, aligned weighted ridge >= 0.10 and beating the teacher in >= 90%, misaligned <= 0.02)")


CHECKS: dict[str, Callable[[dict], tuple]] = dict(zip(PREDICTION_IDS, (
    _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12, _p13, _p14)))


def check_predictions(metrics: dict) -> list[dict]:
    """P1-P14 of docs/THEORY.md §4 against the metrics: held true/false, or null where the setting was not run."""
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
    if metrics.get("cnn"):
        _plot_cnn(metrics["cnn"], out_dir / "cnn_accuracy.png")
        written.append("cnn_accuracy.png")
    if metrics.get("ridge"):
        _plot_ridge(metrics["ridge"], out_dir / "ridge_student_error.png")
        written.append("ridge_student_error.png")
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


def _plot_cnn(entries: list[dict], path: Path) -> None:
    abundant = [e for e in entries if e["regime"] == "abundant"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    teacher = entries[0]["teacher_acc"]
    ax = axes[0]
    for e in abundant:
        steps = [max(s, 0.8) for s in e["curve"]["step"]]  # log axis: step 0 just left of step 1
        ax.plot(steps, e["curve"]["w2s_acc"], "o-", ms=3, color="tab:blue", label="W2S (teacher labels)")
        ax.plot(steps, e["curve"]["ceiling_acc"], "o-", ms=3, color="tab:red", label="ceiling (ground truth)")
        ax.plot(steps, e["curve"]["w2s_hard_acc"], ":", color="tab:blue", label="W2S on hard points")
        ax.axvline(max(e["w2s_peak_step"], 0.8), color="tab:blue", lw=0.8, alpha=0.5)
        ax.set_title(f"Data-abundant, n = {e['n']} (n||mu_h||^2 / sigma_p^2 d = {e['abundance']:.1f})")
    ax.axhline(teacher, color="k", ls="--", lw=1, label="linear-CNN teacher")
    ax.set_xscale("log")
    ax.set(xlabel="GD step (log scale; step 0 drawn at 0.8)", ylabel="test accuracy vs ground truth (mean over seeds)")
    ax.legend(fontsize=7)
    ax = axes[1]
    es = sorted(entries, key=lambda e: e["n"])
    ns = [e["n"] for e in es]
    ax.plot(ns, [e["w2s_acc_final"] for e in es], "o-", color="tab:blue", label="W2S, end of training")
    for e in es:
        seeds = e["per_seed"]["w2s_acc_final"]
        ax.scatter([e["n"]] * len(seeds), seeds, s=10, alpha=0.35, color="tab:blue")
    ax.plot(ns, [e["ceiling_acc_final"] for e in es], "o-", color="tab:red", label="ceiling, end of training")
    ax.axhline(teacher, color="k", ls="--", lw=1, label="teacher")
    scarce = [e["n"] for e in es if e["abundance"] < 1]
    if scarce:
        ax.axvspan(min(ns) * 0.9, max(scarce) * 1.1, color="0.9", zorder=0, label="data-scarce (ratio < 1)")
    ax.set_xscale("log")
    ax.set(xlabel="training points n (log scale)", ylabel="final test accuracy", title="Final accuracy vs n")
    ax.legend(fontsize=7)
    fig.suptitle(f"Setting 3a: linear CNN -> two-layer ReLU CNN on signal-noise patches ({es[0]['n_seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ridge(entries: list[dict], path: Path) -> None:
    mults = sorted({e["teacher_lambda_mult"] for e in entries})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax = axes[0]
    low = [e for e in entries if e["teacher_lambda_mult"] == mults[0]]
    for e, color in zip(sorted(low, key=lambda e: e["n_over_d"]), colors):
        st = e["students"]["isotropic"]
        ax.plot(st["curve"]["lambda"], st["curve"]["err_median"], color=color,
                label=f"student, n/d = {e['n_over_d']:g}")
        ax.axhline(e["teacher_err"], color=color, ls="--", lw=1)
    ax.axhline(1.0, color="k", ls=":", lw=1, label="zero predictor")
    ax.set(xscale="log", yscale="log", xlabel="student ridge lambda_S", ylabel="excess error / ||beta*||^2 (median)",
           title=f"Isotropic student, lambda_T = {mults[0]:g} lambda_opt (dashed: teacher)")
    ax.legend(fontsize=7)
    ax = axes[1]
    ratio = min((e["n_over_d"] for e in entries), key=lambda r: abs(r - 1.0))
    e = next(e for e in entries if e["n_over_d"] == ratio and e["teacher_lambda_mult"] == mults[-1])
    for name, color in zip(("isotropic", "aligned", "misaligned"), ("tab:gray", "tab:green", "tab:purple")):
        st = e["students"][name]
        ax.plot(st["curve"]["lambda"], st["curve"]["err_median"], color=color, label=f"{name} penalty")
    ax.axhline(e["teacher_err"], color="k", ls="--", lw=1, label="teacher")
    ax.set(xscale="log", yscale="log", xlabel="student ridge lambda_S",
           title=f"lambda_T = {mults[-1]:g} lambda_opt, n/d = {ratio:g}: three penalties")
    ax.legend(fontsize=7)
    fig.suptitle(f"Setting 3b: ridge teacher -> ridge student on the teacher's labels ({e['n_seeds']} seeds)")
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
        "Four synthetic weak-to-strong settings, run in seconds on CPU. All are reconstructions from paper abstracts "
        "(docs/THEORY.md): every size and learning rate is a reconstruction default, not a value from the papers.",
        "",
        "- **Setting 1, feature elicitation** (Awano & Suzuki, arXiv 2605.12908): a pretrained two-layer ReLU reward "
        "model with per-task subspaces is fine-tuned on a weak single-index teacher's labels (W2S) or on ground "
        "truth (SFT = ceiling); rho couples off-target task directions to the target.",
        "- **Setting 2, linear logistic regression** (Geng, Hansen, Li, arXiv 2605.05742): student and teacher are "
        "the same linear class; the student runs GD on the teacher's labels from its own better initialisation. "
        "W2S = the best point of the path beats both the teacher and the initialisation.",
        "- **Setting 3a, linear CNN -> two-layer ReLU CNN** (Oh, Song, Yun, arXiv 2510.24812): signal-noise patch "
        "data with easy and hard signals; a linear-CNN teacher errs on hard points; the ReLU-CNN student is trained by "
        "GD on its labels (W2S) or on ground truth (ceiling), with many samples (early label correction, then "
        "degradation) and with few (harmful or benign overfitting).",
        "- **Setting 3b, ridge regression** (Moniri & Hassani, arXiv 2505.18346): a ridge student fitted on a ridge "
        "teacher's predictions; isotropic and weighted penalties, oracle-tuned over a grid of lambda_S.",
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

    if metrics.get("cnn"):
        lines += ["### Setting 3a: linear CNN -> two-layer ReLU CNN", "",
                  "| run | n | n·‖μ_h‖²/(σ_p²d) | teacher acc | W2S peak (step) | W2S final | drop | ceiling final | "
                  "W2S fit: weak labels / teacher errors | teacher errors corrected at peak / final | "
                  "W2S final > teacher |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in sorted(metrics["cnn"], key=lambda e: e["n"]):
            peak = "–" if e["w2s_acc_peak"] is None else f"{_fmt(e['w2s_acc_peak'])} ({e['w2s_peak_step']})"
            lines.append(
                f"| {e['regime']} | {e['n']} | {e['abundance']:.2f} | {_fmt(e['teacher_acc'])} | {peak} | "
                f"{_fmt(e['w2s_acc_final'])} | {'–' if e['w2s_drop'] is None else _fmt(e['w2s_drop'])} | "
                f"{_fmt(e['ceiling_acc_final'])} | {_fmt(e['w2s_fit'], 2)} / "
                f"{_fmt(e['w2s_fit_wrong'], 2)} | {_fmt(e['w2s_corrected_peak'], 2)} / "
                f"{_fmt(e['w2s_corrected_final'], 2)} | {_count(e['w2s_final_above_teacher_frac'], e['n_seeds'])} |")
        lines += ["", "Accuracies are means over seeds against the ground truth; the data-scarce runs are measured at "
                  "the end of training only.", "",
                  f"![Setting 3a: accuracy along training and against n]({rel_dir}/cnn_accuracy.png)", ""]

    if metrics.get("ridge"):
        lines += ["### Setting 3b: ridge regression", "",
                  "| n/d | lambda_T / lambda_opt | teacher err | tuned teacher err | best student err, median gain, "
                  "beats teacher: isotropic | aligned weighted | misaligned weighted |",
                  "|---|---|---|---|---|---|---|"]
        for e in metrics["ridge"]:
            cells = []
            for name in ("isotropic", "aligned", "misaligned"):
                st = e["students"][name]
                cells.append(f"{_fmt(st['err_best'])}, {_fmt(st['gain_median'], 2)}, "
                             f"{_count(st['beats_teacher_frac'], e['n_seeds'])}")
            lines.append(f"| {e['n_over_d']:g} | {e['teacher_lambda_mult']:g} | {_fmt(e['teacher_err'])} | "
                         f"{_fmt(e['teacher_err_opt'])} | " + " | ".join(cells) + " |")
        lines += ["", "Errors are medians over seeds of the excess test error ‖β − β*‖² / ‖β*‖² (the zero predictor "
                  "scores 1); gain = (teacher − best student) / teacher, the student's lambda_S chosen per seed over "
                  "the grid (oracle tuning).", "",
                  f"![Setting 3b: student error against lambda_S]({rel_dir}/ridge_student_error.png)", ""]
    if "wall_time_s" in metrics:
        lines += [f"Wall time of the stage: {metrics['wall_time_s']:.1f} s.", ""]
    return "\n".join(lines)
