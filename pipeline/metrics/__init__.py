"""Evaluation statistics: accuracy, AUROC and performance gap recovered (PGR), with bootstrap CIs,
for one training seed or pooled over several.

Plain numpy, vectorised over bootstrap resamples. `pipeline/metrics/pgr/pgr.py` exposes the one-seed
computation as an `evaluate` module that loads offline by path.

Pooling over seeds is a two-level bootstrap: each resample draws the seeds with replacement and the
test examples with replacement (the same draw for every model, and for every seed when the seeds share
one test split), then averages each model's metric over the drawn seeds. The interval therefore
carries both sources of noise: which seeds were run and which test examples were drawn. Point values
are means over seeds; pooled PGR is the ratio of mean gaps, (mean T - mean W) / (mean C - mean W),
which stays finite when one seed's own gap is tiny; the per-seed PGRs and their mean and std are
reported beside it.
"""

import numpy as np
from scipy.stats import rankdata

KINDS = ("accuracy", "auroc")


def auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row (Mann-Whitney U with tied ranks averaged); nan where a row has one class."""
    scores, labels = np.atleast_2d(scores), np.atleast_2d(labels)
    ranks = rankdata(scores, axis=1)
    pos = labels.sum(1)
    neg = labels.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(1) - pos * (pos + 1) / 2) / (pos * neg)


def _metric_rows(kind: str, p1: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    if kind == "accuracy":
        return ((p1 > 0.5).astype(int) == y)[idx].mean(-1)
    return auroc_rows(p1[idx], y[idx])


def _interval(b: np.ndarray, ci: float) -> list[float]:
    return [float(np.nanpercentile(b, (1 - ci) / 2 * 100)), float(np.nanpercentile(b, (1 + ci) / 2 * 100))]


def _bootstrap(per_seed: dict, n_boot: int, seed: int, shared_test: bool, kinds: tuple):
    """Every model's metric on every bootstrap resample, and `pooled(name, kind, seeds)`: its mean over those
    seeds and that mean on each resample (seeds drawn with replacement, then test examples; the same draws
    for every model, so differences between models are paired). Returns seeds, model names, the seeds of
    each model, `pooled` and the point values {(name, seed, kind): value}."""
    seeds = sorted(per_seed)
    rng = np.random.default_rng(seed)
    idx_by_seed, boots, points = {}, {}, {}
    shared_idx = None
    for s in seeds:
        y, probs = per_seed[s]
        y = np.asarray(y).astype(int)
        if shared_test:  # one test split: the same example draw for every seed, as for every model
            if shared_idx is None:
                shared_idx = rng.integers(0, len(y), size=(n_boot, len(y)))
            elif shared_idx.shape[1] != len(y):
                raise ValueError("shared_test=True but seeds have test splits of different sizes")
            idx_by_seed[s] = shared_idx
        else:
            idx_by_seed[s] = np.random.default_rng([seed, s]).integers(0, len(y), size=(n_boot, len(y)))
        full = np.arange(len(y))[None]
        for name, p in probs.items():
            p1 = np.asarray(p, dtype=float)
            for kind in kinds:
                boots[name, s, kind] = _metric_rows(kind, p1, y, idx_by_seed[s])
                points[name, s, kind] = float(_metric_rows(kind, p1, y, full)[0])
    names = list(dict.fromkeys(n for s in seeds for n in per_seed[s][1]))
    seeds_of = {n: [s for s in seeds if n in per_seed[s][1]] for n in names}
    draws = {}

    def seed_draw(subset: tuple) -> np.ndarray:
        """[n_boot, len(subset)] positions into subset: seeds drawn with replacement (identity for one seed)."""
        if subset not in draws:
            draws[subset] = (np.zeros((n_boot, 1), dtype=int) if len(subset) == 1 else
                             np.random.default_rng([seed, 7919, *subset]).integers(0, len(subset),
                                                                                   size=(n_boot, len(subset))))
        return draws[subset]

    def pooled(name: str, kind: str, subset: tuple) -> tuple[float, np.ndarray]:
        d = seed_draw(subset)
        table = np.stack([boots[name, s, kind] for s in subset], 1)  # [n_boot, len(subset)]
        return float(np.mean([points[name, s, kind] for s in subset])), np.nanmean(
            np.take_along_axis(table, d, 1), 1)

    return seeds, names, seeds_of, pooled, points


def evaluate_seeds(per_seed: dict, weak: str, ceiling: str, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                   shared_test: bool = True, kinds: tuple = KINDS, baseline: str | None = None) -> dict:
    """Point values and CIs of every model, and PGR of every other model, pooled over training seeds.

    per_seed: {training seed: (gold labels y, {model name: P(class 1)})}. Weak and ceiling must be present
    for every seed; a method present for a subset of seeds is pooled over that subset (with weak and
    ceiling restricted to the same seeds, so its PGR compares like with like).
    PGR is undefined (None + reason) unless the pooled ceiling - weak gap's CI excludes 0 in the
    ceiling's favour. With one seed this is exactly the paired bootstrap over test examples.
    `kinds`: the metrics computed (a generation task's exact-match accuracy has no AUROC).
    `baseline`: a model every other method is compared with, paired (`vs_baseline`, see `_paired`).
    """
    seeds, names, seeds_of, pooled, points = _bootstrap(per_seed, n_boot, seed, shared_test, kinds)
    for ref in (weak, ceiling):
        if seeds_of.get(ref) != seeds:
            raise ValueError(f"{ref!r} must have predictions for every seed {seeds}")

    n_test = {s: len(per_seed[s][0]) for s in seeds}
    out = {"seeds": seeds, "n_test": n_test[seeds[0]] if len(set(n_test.values())) == 1 else n_test,
           "n_bootstrap": n_boot, "ci_level": ci, "models": {}, "pgr": {}}
    for name in names:
        subset = tuple(seeds_of[name])
        entry = {"seeds": list(subset)}
        for kind in kinds:
            value, b = pooled(name, kind, subset)
            per = [points[name, s, kind] for s in subset]
            entry[kind] = {"value": value, "ci95": _interval(b, ci), "per_seed": per,
                           "std": float(np.std(per, ddof=1)) if len(per) > 1 else None}
        out["models"][name] = entry
    for name in names:
        if name in (weak, ceiling):
            continue
        subset = tuple(seeds_of[name])
        out["pgr"][name] = {}
        for kind in kinds:
            (w, wb), (c, cb), (t, tb) = (pooled(m, kind, subset) for m in (weak, ceiling, name))
            gap_b = cb - wb
            gap_ci = _interval(gap_b, ci)
            per = [(points[name, s, kind] - points[weak, s, kind]) / (points[ceiling, s, kind] - points[weak, s, kind])
                   if points[ceiling, s, kind] != points[weak, s, kind] else None for s in subset]
            finite = [v for v in per if v is not None]
            entry = {"value": None, "ci95": None, "gap": c - w, "gap_ci95": gap_ci, "seeds": list(subset),
                     "per_seed": per, "mean_of_seeds": float(np.mean(finite)) if finite else None,
                     "std_of_seeds": float(np.std(finite, ddof=1)) if len(finite) > 1 else None}
            if gap_ci[0] <= 0:
                entry["reason"] = undefined_reason(kind, c - w, gap_ci, ci)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):  # rare resamples with a zero gap
                    pgr_b = (tb - wb) / gap_b
                entry["value"] = float((t - w) / (c - w))
                entry["ci95"] = _interval(pgr_b, ci)
            out["pgr"][name][kind] = entry
    if baseline is not None and baseline in names:
        out["baseline"] = baseline
        out["vs_baseline"] = {name: _paired(name, baseline, [s for s in seeds_of[name] if s in seeds_of[baseline]],
                                            kinds, pooled, points, weak, ceiling, ci)
                              for name in names if name not in (weak, ceiling, baseline)}
    return out


def _paired(name: str, baseline: str, subset: list, kinds: tuple, pooled, points: dict, weak: str, ceiling: str,
            ci: float) -> dict:
    """`name` minus `baseline` on the seeds both ran: the difference of their pooled metrics and of their
    PGRs, each resample drawing the same seeds and the same test examples for both (so a model compared
    with itself gets exactly [0, 0]). ΔPGR = Δ / (ceiling - weak), undefined like PGR when that gap is
    within noise. `verdict`: better / worse when the accuracy interval excludes 0, else unclear."""
    subset = tuple(subset)
    entry = {"baseline": baseline, "seeds": list(subset)}
    if not subset:
        return {**entry, "verdict": "no shared seed"}
    for kind in kinds:
        (t, tb), (b, bb) = pooled(name, kind, subset), pooled(baseline, kind, subset)
        (w, wb), (c, cb) = pooled(weak, kind, subset), pooled(ceiling, kind, subset)
        per = [points[name, s, kind] - points[baseline, s, kind] for s in subset]
        entry[kind] = {"value": t - b, "ci95": _interval(tb - bb, ci), "per_seed": per,
                       "better_on_seeds": int(sum(v > 0 for v in per)), "worse_on_seeds": int(sum(v < 0 for v in per))}
        gap_ci = _interval(cb - wb, ci)
        if gap_ci[0] <= 0:
            entry[f"pgr_{kind}"] = {"value": None, "ci95": None, "reason": undefined_reason(kind, c - w, gap_ci, ci)}
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                entry[f"pgr_{kind}"] = {"value": float((t - b) / (c - w)), "ci95": _interval((tb - bb) / (cb - wb), ci)}
    lo, hi = entry[kinds[0]]["ci95"]
    entry["verdict"] = "better" if lo > 0 else "worse" if hi < 0 else "unclear"
    return entry


def undefined_reason(kind: str, gap: float, gap_ci, ci: float) -> str:
    """Why PGR is undefined for a ceiling - weak gap whose CI does not lie above 0."""
    if gap_ci[1] < 0:
        return (f"ceiling - weak {kind} = {gap:+.4f}: the ceiling is below the weak model ({ci:.0%} CI of the "
                f"difference [{gap_ci[0]:+.4f}, {gap_ci[1]:+.4f}] lies entirely below 0), so there is no gap "
                "to recover")
    return (f"ceiling - weak {kind} = {gap:+.4f} is within noise ({ci:.0%} CI of the difference "
            f"[{gap_ci[0]:+.4f}, {gap_ci[1]:+.4f}] includes 0): PGR would divide by ~0")


def evaluate_predictions(y: np.ndarray, probs: dict[str, np.ndarray], weak: str, ceiling: str,
                         n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """One seed: point values and paired-bootstrap CIs (test examples resampled jointly for all models),
    PGR = (transfer - weak) / (ceiling - weak), undefined when the gap is within noise."""
    return evaluate_seeds({0: (y, probs)}, weak, ceiling, n_boot, ci, seed)


def compare_settings(per_seed: dict, reference: tuple[str, str], other: tuple[str, str], ceiling: str,
                     n_boot: int = 1000, ci: float = 0.95, seed: int = 0, shared_test: bool = True,
                     kind: str = "accuracy") -> dict:
    """One weak-to-strong setting against another on the same test examples and seeds: `other` minus
    `reference`, each a (weak model, student) pair of names in `per_seed` (as evaluate_seeds takes it),
    sharing `ceiling`. Δ of the weak model's metric, of the student's, and of PGR (each setting's PGR with
    its own weak model), every resample drawing the same seeds and test examples for both settings, so a
    setting compared with itself gets exactly [0, 0]. ΔPGR is undefined when either setting's ceiling -
    weak gap is within noise."""
    seeds, _, seeds_of, pooled, points = _bootstrap(per_seed, n_boot, seed, shared_test, (kind,))
    subset = tuple(s for s in seeds if all(s in seeds_of.get(n, ()) for n in (*reference, *other, ceiling)))
    if not subset:
        return {"seeds": [], "verdict": "no shared seed"}
    c, cb = pooled(ceiling, kind, subset)
    (wr, wrb), (tr, trb), (wo, wob), (to, tob) = (pooled(n, kind, subset) for n in (*reference, *other))
    out = {"seeds": list(subset), "kind": kind,
           "weak": {"value": wo - wr, "ci95": _interval(wob - wrb, ci)},
           "student": {"value": to - tr, "ci95": _interval(tob - trb, ci),
                       "per_seed": [points[other[1], s, kind] - points[reference[1], s, kind] for s in subset]}}
    gaps = [_interval(cb - wrb, ci), _interval(cb - wob, ci)]
    if min(g[0] for g in gaps) <= 0:
        out["pgr"] = {"value": None, "ci95": None, "reason": "a setting's ceiling - weak gap is within noise"}
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            b = (tob - wob) / (cb - wob) - (trb - wrb) / (cb - wrb)
        out["pgr"] = {"value": float((to - wo) / (c - wo) - (tr - wr) / (c - wr)), "ci95": _interval(b, ci)}
    lo, hi = out["student"]["ci95"]
    out["verdict"] = "better" if lo > 0 else "worse" if hi < 0 else "unclear"
    return out
