"""selective: P(IK) routing between strong self-labels and graph-smoothed weak labels (Lang et al., AAAI 2026).

1. Strong self-labels, never learned from ground truth. Encoder: a probe on the strong model's frozen
   features, cross-fitted on B (each fold labelled by a probe trained on the *weak* labels of the other
   folds); on A by a probe trained on all of B's weak labels. Causal model: few-shot prompting with
   weak-labelled demonstrations from B (never the query itself), verbalizer log-odds calibrated to the
   weak labels' positive rate (pipeline/prompting.py).
2. P(IK): logistic regression on [strong features, self-label confidence] predicting "the self-label is
   correct", trained on part of A, the weak supervisor's own labelled data (the method's only use of gold).
3. tau on the held-out rest of A: `best_mix` takes the tau whose mixed labels (self-label where routed,
   weak label elsewhere) are most accurate there, so it routes where the self-label is likelier right than
   the weak label; `beat_weak` the smallest tau whose routed self-labels beat the weak labels.
   The weak model was trained on all of A, so its own labels there are in-sample (on the quickstart: 84% on
   held-out A against 80% on B); by default the weak model is retrained on folds of A to label A out of
   sample (`weak_reference: crossfit`). `fixed` uses `tau`.
4. On B: P(IK) >= tau -> self-label; else the weak label after graph smoothing (graph_smooth.py).
B's ground truth is read only for the diagnostics.
"""

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from pipeline import models
from pipeline.config.schema import HeadConfig, MethodConfig
from pipeline.data import dataset_prompt, prompt_spec
from pipeline.errors import UserError
from pipeline.methods import generative
from pipeline.methods.base import LabelSet, MethodContext, crossfit_weak_on_a
from pipeline.methods.graph_smooth import Smoothing, smooth
from pipeline.plotting import pyplot, save


@dataclass
class Config(MethodConfig):
    name: str = "selective"
    self_labels: Literal["auto", "probe", "prompt"] = field(default="auto", metadata={
        "help": "how the strong model labels by itself: probe (weak-trained, cross-fitted, any model), prompt "
                "(few-shot, causal models), auto = prompt for causal strong models, else probe"})
    shots: int = field(default=4, metadata={"help": "weak-labelled demonstrations per prompt (prompt self-labels)"})
    prompt: Optional[str] = field(default=None, metadata={
        "help": "template with {text}; default: the shipped dataset's"})
    verbalizers: Optional[list[str]] = field(default=None, metadata={
        "help": "continuations for label 0 and label 1, one token each; default: the shipped dataset's"})
    prompt_batch_size: int = field(default=16, metadata={"help": "prompts per forward pass"})
    block_size: int = field(default=100, metadata={"help": "prompts sharing one KV-cached demonstration block"})
    folds: int = field(default=5, metadata={"help": "cross-fitting folds of B for the self-label probe"})
    tau_rule: Literal["best_mix", "beat_weak", "fixed"] = field(default="best_mix", metadata={
        "help": "best_mix: tau whose mixed labels are most accurate on held-out A; beat_weak: smallest tau whose "
                "routed self-labels beat the weak labels there; fixed: use `tau`"})
    tau: float = field(default=0.9, metadata={"help": "P(IK) threshold when tau_rule is fixed"})
    min_routed: int = field(default=10, metadata={"help": "beat_weak ignores thresholds routing fewer held-out "
                                                          "examples than this"})
    heldout_fraction: float = field(default=0.4, metadata={"help": "share of A held out from P(IK) training "
                                                                   "to choose tau"})
    smooth: bool = field(default=True, metadata={"help": "graph-smooth the weak labels that are kept"})
    smoothing: Smoothing = field(default_factory=Smoothing, metadata={
        "help": "options of that smoothing (graph_smooth's: knn, alpha, inputs, balance)"})
    weak_reference: Literal["crossfit", "in_sample"] = field(default="crossfit", metadata={
        "help": "weak labels on held-out A that tau is compared against: crossfit retrains the weak model on "
                "the other part of A (out-of-sample, costs weak_folds extra weak trainings); in_sample reuses "
                "the weak model, which saw A (optimistic, routes less)"})
    weak_folds: int = field(default=3, metadata={"help": "folds of A for the crossfit weak reference"})

    def validate(self) -> list[str]:
        errors = []
        if self.folds < 2:
            errors.append(f"folds: must be at least 2, got {self.folds}")
        if not 0 <= self.tau <= 1:
            errors.append(f"tau: a probability threshold must be in [0, 1], got {self.tau}")
        if not 0 < self.heldout_fraction < 1:
            errors.append(f"heldout_fraction: must be in (0, 1), got {self.heldout_fraction}")
        errors += [f"smoothing.{e}" for e in self.smoothing.validate()]
        if self.shots < 0:
            errors.append(f"shots: must be >= 0, got {self.shots}")
        if self.weak_folds < 2:
            errors.append(f"weak_folds: must be at least 2, got {self.weak_folds}")
        return errors


def cross_fit_self_labels(features: np.ndarray, weak: np.ndarray, folds: int, head_cfg: HeadConfig,
                          seed: int) -> np.ndarray:
    """Out-of-fold probe predictions: each example is labelled by a probe that never saw its weak label."""
    from pipeline.train.head import fit_head, head_proba  # torch: imported where it runs (fast `w2s keys`)

    out = np.zeros_like(weak, dtype=np.float32)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(features)), folds)
    for k, held in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        out[held] = head_proba(fit_head(features[fit], weak[fit], head_cfg, seed), features[held])
    return out


def uses_prompting(cfg: Config, strong_model: str, task: str = "classification") -> bool:
    """Few-shot prompt self-labels (classification with a causal strong model), else probes (any model,
    any task: a preference pair's probe reads the pair's feature difference)."""
    if task != "classification":
        return False
    return cfg.self_labels == "prompt" or (cfg.self_labels == "auto" and models.kind(strong_model) == "causal")


def preflight(cfg: Config, recipe) -> str | None:
    """Config problems that need the recipe as a whole (called before anything runs)."""
    if recipe.task == "generation":
        if models.kind(recipe.strong.model) == "encoder":
            return (f"selective on a generation task routes to the strong model's own answers; "
                    f"{recipe.strong.model!r} is an encoder (use a causal strong model)")
        if cfg.self_labels == "probe":
            return ("self_labels: a generation task's self-labels are the strong model's own few-shot answers; "
                    "leave self_labels at auto")
        return None
    if cfg.self_labels == "prompt" and recipe.task != "classification":
        return f"self_labels: prompt labels classification examples; a {recipe.task} task uses probe"
    if cfg.self_labels == "prompt" and models.kind(recipe.strong.model) == "encoder":
        return f"self_labels: prompt needs a causal strong model; {recipe.strong.model!r} is an encoder (use probe)"
    if uses_prompting(cfg, recipe.strong.model, recipe.task):
        try:
            _, verbalizers = prompt_spec(dataset_prompt(recipe.data.name), cfg.prompt, cfg.verbalizers)
        except UserError as e:
            return str(e)
        return models.verbalizer_problem(recipe.strong.model, verbalizers)
    return None


def prompt_self_labels(cfg: Config, ctx: MethodContext, weak_b_hard: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Few-shot self-labels of the causal strong model on B (demos from the rest of B) and on A (demos from
    B): queries share a KV-cached demonstration block per `block_size`, calibrated per block to the weak
    labels' positive rate (A's queries use B's overall rate: their weak labels would be in-sample)."""
    from pipeline.prompting import DemoPool, calibrate

    template, verbalizers = prompt_spec(ctx.default_prompt, cfg.prompt, cfg.verbalizers)
    prompter = ctx.prompter(ctx.strong.model, template, verbalizers, batch_size=cfg.prompt_batch_size)
    texts_b = ctx.texts("transfer")
    labels = weak_b_hard.argmax(1)
    rate = float(labels.mean())
    pool = DemoPool(texts_b, labels, balance=True)
    out = {}
    for split, pool_idx in (("transfer", np.arange(len(texts_b))), ("train_weak", None)):
        odds, blocks, _ = prompter.block_log_odds(ctx.texts(split), pool, cfg.shots, cfg.block_size, ctx.seed,
                                                  pool_idx, desc=f"selective: prompt {split}")
        if split == "transfer":
            rates = {int(b): float(labels[blocks == b].mean()) for b in np.unique(blocks)}
            out[split] = calibrate(odds, "per_block", rate, blocks, rates)
        else:
            out[split] = calibrate(odds, "prior", rate)
    del prompter
    return out["transfer"], out["train_weak"], {"self_labels": f"prompt ({cfg.shots}-shot, weak-labelled "
                                                               f"demonstrations from B, calibrated)"}


def choose_tau(pik: np.ndarray, self_correct: np.ndarray, weak_correct: np.ndarray, min_routed: int,
               rule: str = "best_mix") -> dict:
    """Pick the P(IK) threshold on held-out A (None: route nothing).

    best_mix: the threshold whose mixed labels (self where routed, weak elsewhere) are most accurate; ties go
    to routing less. beat_weak: the smallest threshold whose routed self-labels beat the weak labels there.
    """
    curve = []
    best, best_mix = None, float(weak_correct.mean())  # routing nothing is always an option
    for tau in np.unique(pik)[::-1]:  # every distinct threshold, from strict to lax; none routes nothing
        routed = pik >= tau
        n = int(routed.sum())
        s, w = float(self_correct[routed].mean()), float(weak_correct[routed].mean())
        mix = float((self_correct[routed].sum() + weak_correct[~routed].sum()) / len(pik))
        curve.append({"tau": float(tau), "routed_share": n / len(pik), "self_acc": s, "weak_acc": w,
                      "mixed_acc": mix})
        if n < min_routed:
            continue
        if rule == "beat_weak" and s > w:
            best = float(tau)
        elif rule == "best_mix" and mix > best_mix:
            best, best_mix = float(tau), mix
    return {"tau": best, "curve": curve[::-1]}


def build_labels(cfg: Config, ctx: MethodContext) -> LabelSet:
    from pipeline.metrics import auroc_rows
    from pipeline.train.head import fit_head, head_proba

    if ctx.task == "generation":
        return generation_labels(cfg, ctx)
    strong = ctx.strong
    feats = ctx.features(["train_weak", "transfer"])
    fa, fb = feats["train_weak"], feats["transfer"]
    weak_b = ctx.weak_labels
    weak_b_hard = np.eye(2, dtype=np.float32)[weak_b.argmax(1)]
    gold_a = ctx.labels("train_weak")

    # 1. self-labels (no gold): few-shot prompts for a causal model, else weak-trained cross-fitted probes
    if uses_prompting(cfg, strong.model, ctx.task):
        self_b, self_a, how = prompt_self_labels(cfg, ctx, weak_b_hard)
    else:
        self_b = cross_fit_self_labels(fb, weak_b_hard, cfg.folds, strong.head, ctx.seed)
        self_a = head_proba(fit_head(fb, weak_b_hard, strong.head, ctx.seed), fa)
        how = {"self_labels": f"probe on frozen strong features, {cfg.folds}-fold cross-fitted on B's weak labels"}

    # 2. P(IK) on A: does the self-label match A's gold label?
    def pik_inputs(f, s):
        return np.concatenate([f, np.abs(s[:, 1:] - 0.5) * 2], axis=1)  # features + self-label confidence

    correct_a = (self_a.argmax(1) == gold_a).astype(int)
    order = np.random.default_rng(ctx.seed + 1).permutation(len(fa))
    n_held = max(2, int(round(cfg.heldout_fraction * len(fa))))
    held, fit = order[:n_held], order[n_held:]
    if len(np.unique(correct_a[fit])) < 2:
        pik_model = None  # self-labels all right (or all wrong) on A: P(IK) is constant
        const = float(correct_a[fit].mean())
        pik_a = np.full(len(fa), const)
        pik_b = np.full(len(fb), const)
    else:
        pik_model = fit_head(pik_inputs(fa[fit], self_a[fit]), np.eye(2)[correct_a[fit]], strong.head, ctx.seed)
        pik_a = head_proba(pik_model, pik_inputs(fa, self_a))[:, 1]
        pik_b = head_proba(pik_model, pik_inputs(fb, self_b))[:, 1]
    pik_auroc = float(auroc_rows(pik_a[held], correct_a[held])[0]) if len(np.unique(correct_a[held])) == 2 else None

    # 3. tau on held-out A, against weak labels of A that the weak model did not train on
    weak_a = crossfit_weak_on_a(ctx, cfg.weak_folds) if cfg.weak_reference == "crossfit" else ctx.weak_train_probs
    choice = choose_tau(pik_a[held], correct_a[held].astype(bool), weak_a[held].argmax(1) == gold_a[held],
                        cfg.min_routed, cfg.tau_rule)
    tau = cfg.tau if cfg.tau_rule == "fixed" else choice["tau"]

    # 4. mix on B
    sm = cfg.smoothing
    kept = smooth(fb, weak_b, sm.knn, sm.alpha, sm.inputs, sm.balance) if cfg.smooth else weak_b
    routed = pik_b >= tau if tau is not None else np.zeros(len(fb), dtype=bool)
    mixed = np.where(routed[:, None], self_b, kept).astype(np.float32)

    gold_b = ctx.labels("transfer")  # diagnostics only

    def acc(p, mask=None):
        m = np.ones(len(gold_b), dtype=bool) if mask is None else mask
        return float((p[m].argmax(1) == gold_b[m]).mean()) if m.any() else None

    disagree = self_b.argmax(1) != weak_b.argmax(1)
    return LabelSet(targets=mixed, diagnostics={
        **how, "tau": tau, "tau_rule": cfg.tau_rule,
        "routed_share": float(routed.mean()),
        "routed_share_where_self_and_weak_disagree": float(routed[disagree].mean()) if disagree.any() else None,
        "self_label_accuracy_on_routed": acc(self_b, routed),
        "weak_label_accuracy_on_routed": acc(weak_b, routed),
        "self_label_accuracy_all_B": acc(self_b),
        "weak_label_accuracy_before_smoothing": acc(weak_b),
        "weak_label_accuracy_after_smoothing": acc(kept),
        "final_label_accuracy": acc(mixed),
        "pik_auroc_heldout_A": pik_auroc,
        "pik_train_size": int(len(fit)), "pik_heldout_size": int(len(held)),
        "weak_reference": cfg.weak_reference,
        "weak_accuracy_heldout_A": float((weak_a[held].argmax(1) == gold_a[held]).mean()),
        "self_label_accuracy_heldout_A": float(correct_a[held].mean()),
        "gold_use": "A's gold labels train P(IK) and choose tau (A is the weak supervisor's own labelled data); "
                    "B's gold is used only for these diagnostics",
        "tau_curve_heldout_A": choice["curve"],
        "tau_curve_B": [
            {"tau": c["tau"], "routed_share": float((pik_b >= c["tau"]).mean()),
             "self_acc": acc(self_b, pik_b >= c["tau"]), "weak_acc": acc(weak_b, pik_b >= c["tau"])}
            for c in choice["curve"][:: max(1, len(choice["curve"]) // 40)]],
    })


def generation_labels(cfg: Config, ctx: MethodContext) -> LabelSet:
    """P(IK) routing between the strong model's own few-shot answers and the weak answers (generation):
    the strong model answers A and B with `shots` weak-answered demonstrations from B (never the query);
    a probe on its frozen features, trained on part of A with gold saying whether its own answer there was
    right, gives P(IK); tau is chosen on the rest of A against the weak model's answers there (`weak_reference`);
    each B question keeps the strong model's own answer where P(IK) >= tau, the weak answer elsewhere."""
    from pipeline.metrics import auroc_rows
    from pipeline.train.head import fit_head, head_proba

    gen, answer = ctx.gen, ctx.generator(ctx.strong.model)
    qa, qb = ctx.texts("train_weak"), ctx.texts("transfer")
    gold_a, gold_b, weak_b = ctx.labels("train_weak"), ctx.labels("transfer"), ctx.weak_labels
    own_b = np.asarray(answer(generative.few_shot_prompts(gen, qb, qb, weak_b, cfg.shots, ctx.seed + 11, True),
                              "selective: own answers on B"), dtype=object)
    own_a = np.asarray(answer(generative.few_shot_prompts(gen, qa, qb, weak_b, cfg.shots, ctx.seed + 12, False),
                              "selective: own answers on A"), dtype=object)
    own_ok_a = gen.correct(own_a, gold_a)  # A's gold: the weak supervisor's own data, P(IK)'s only supervision
    weak_a = crossfit_weak_on_a(ctx, cfg.weak_folds) if cfg.weak_reference == "crossfit" else ctx.weak_train_probs
    weak_ok_a = gen.correct(weak_a, gold_a)
    feats = ctx.features(["train_weak", "transfer"])
    order = np.random.default_rng(ctx.seed + 14).permutation(len(qa))
    n_held = max(1, int(round(cfg.heldout_fraction * len(qa))))
    held, fit = np.sort(order[:n_held]), np.sort(order[n_held:])
    y = own_ok_a.astype(int)
    probe = None
    if len(np.unique(y[fit])) < 2:  # the strong model is always (or never) right on A: P(IK) is that constant
        p_held, p_b = np.full(len(held), float(y[fit].mean())), np.full(len(qb), float(y[fit].mean()))
    else:
        probe = fit_head(feats["train_weak"][fit], np.eye(2, dtype=np.float32)[y[fit]], ctx.strong.head, ctx.seed)
        p_held = head_proba(probe, feats["train_weak"][held])[:, 1]
        p_b = head_proba(probe, feats["transfer"])[:, 1]
    if cfg.tau_rule == "fixed":
        tau = cfg.tau
    else:
        tau = choose_tau(p_held, own_ok_a[held], weak_ok_a[held], cfg.min_routed, cfg.tau_rule)["tau"]
    labels, routed = generative.route(p_b, np.inf if tau is None else tau, own_b, weak_b)
    own_ok_b, weak_ok_b = gen.correct(own_b, gold_b), gen.correct(weak_b, gold_b)  # diagnostics only
    both = len(np.unique(y[held])) == 2
    return LabelSet(targets=labels, diagnostics={
        "task": "generation", "self_labels": f"the strong model's own answers, {cfg.shots} weak-answered "
                                             "demonstrations from B", "shots": cfg.shots,
        "tau": tau, "tau_rule": cfg.tau_rule, "weak_reference": cfg.weak_reference,
        "routed_share_B": float(routed.mean()), "self_accuracy_A": float(own_ok_a.mean()),
        "weak_accuracy_A": float(weak_ok_a.mean()),
        "pik_auroc_heldout_A": float(auroc_rows(p_held, y[held])[0]) if both else None,
        "self_accuracy_B": float(own_ok_b.mean()), "weak_label_accuracy": float(weak_ok_b.mean()),
        "label_accuracy": float(gen.correct(labels, gold_b).mean()),
        "routed_self_accuracy_B": float(own_ok_b[routed].mean()) if routed.any() else None,
        "routed_weak_accuracy_B": float(weak_ok_b[routed].mean()) if routed.any() else None,
        "probe_l2": None if probe is None else probe["l2"]})


def plots(key: str, entry: dict, run_dir) -> list[str]:
    """Routed share and label accuracy against the P(IK) threshold (report.md)."""
    d = entry.get("diagnostics") or {}
    curve = d.get("tau_curve_B")
    if not curve:
        return []
    plt = pyplot()
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
    return [save(fig, run_dir, f"selective_{key}.png")]
