"""ensemble: RAVEN's learned combination of several weak teachers (Jeon et al., NeurIPS 2025).

K weak teachers label B: the recipe's weak model (unless `include_weak: false`) and every entry of
`teachers` (each a model block like `weak:`, trained on A's gold). Their soft labels are combined as
y = sum_k w_k p_k with w on the simplex. As in RAVEN's `ensemble.py`, w is learned jointly with the
student on the training loss: each step takes an Adam step on the student and on w, then clamps w at 0
and renormalises it to sum 1. Here the student of that joint fit is a linear head on the strong model's
frozen features of B (the method's own probe, whatever the recipe's strong mode): the method's output is
the labels y under the learned w, on which the transfer stage then trains the strong model in its own
mode (head, full or LoRA) as for every method. The first `warmup_epochs` use only the examples on which
every teacher gives the same class (RAVEN's easy-sample warm-up). w starts uniform, or proportional to
each teacher's inverse mean entropy on B (`init: inverse_entropy`). `learn_weights: false` keeps w fixed:
the `uniform` baseline (`name: uniform`). B's gold is read only for the diagnostics (each teacher's
accuracy beside its learned weight).
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pipeline.config.schema import MethodConfig, WeakConfig
from pipeline.data import source_label
from pipeline.methods.base import LabelSet, MethodContext

TASKS = ("classification", "preference")


@dataclass
class Config(MethodConfig):
    name: str = "ensemble"
    teachers: list[WeakConfig] = field(default_factory=list, metadata={
        "help": "further weak teachers, each a model block like `weak:` ({model: ..., mode: ..., data: ...}), "
                "trained on A's gold, or on their own source data when they set `data:` (a shift)"})
    include_weak: bool = field(default=True, metadata={"help": "the recipe's weak model is one of the teachers"})
    learn_weights: bool = field(default=True, metadata={
        "help": "learn the teachers' simplex weights jointly with the student probe (false: fixed at `init`)"})
    init: Literal["uniform", "inverse_entropy"] = field(default="uniform", metadata={
        "help": "starting weights: equal, or proportional to each teacher's inverse mean entropy on B"})
    warmup_epochs: int = field(default=2, metadata={
        "help": "first epochs train only on examples where every teacher gives the same class"})
    epochs: int = field(default=20, metadata={"help": "epochs of the joint fit (mini-batches of B)"})
    batch_size: int = field(default=64, metadata={"help": "examples per step of the joint fit"})
    lr: float = field(default=1e-2, metadata={"help": "Adam learning rate of the student probe"})
    weights_lr: float = field(default=1e-2, metadata={"help": "Adam learning rate of the teachers' weights"})
    objective: Literal["xent", "kl"] = field(default="xent", metadata={
        "help": "loss of the joint fit: xent = cross-entropy of the probe against the combined labels (RAVEN; "
                "linear in the weights, so it rewards a teacher for being confident as much as for being "
                "fittable), kl = KL(combined labels || probe), the same minus the combined labels' entropy"})
    l2: float = field(default=1e-3, metadata={"help": "L2 penalty on the probe's weights (standardised features)"})

    def validate(self) -> list[str]:
        errors = []
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                errors.append(f"{key}: must be at least 1, got {getattr(self, key)}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            errors.append(f"warmup_epochs: must be in [0, epochs], got {self.warmup_epochs}")
        for key in ("lr", "weights_lr"):
            if getattr(self, key) <= 0:
                errors.append(f"{key}: must be positive, got {getattr(self, key)}")
        if self.l2 < 0:
            errors.append(f"l2: must be >= 0, got {self.l2}")
        return errors


def preflight(cfg: Config, recipe) -> str | None:
    from pipeline import models

    if len(cfg.teachers) + cfg.include_weak < 2:
        return ("teachers: an ensemble needs at least two teachers (the weak model counts when include_weak is "
                "true): list further ones, e.g. teachers: [{model: minilm, mode: head}]")
    for i, t in enumerate(cfg.teachers):
        if problem := models.check_spec(t.model) or models.hub_problem(t.model):
            return f"teachers[{i}].model: {problem}"
    return None


def mean_entropy(probs: np.ndarray) -> np.ndarray:
    """[K] each teacher's mean label entropy (nats) over the rows of probs [K, n, 2]."""
    p = np.clip(probs, 1e-6, 1.0)
    return -(p * np.log(p)).sum(-1).mean(-1)


def initial_weights(probs: np.ndarray, init: str) -> np.ndarray:
    """[K] starting weights on the simplex: equal, or proportional to 1 / (mean entropy of each teacher)."""
    k = len(probs)
    if init == "uniform":
        return np.full(k, 1.0 / k)
    inv = 1.0 / np.maximum(mean_entropy(probs), 1e-6)
    return inv / inv.sum()


def project(w):
    """RAVEN's projection after each step: clamp at 0, renormalise to sum 1 (in place, torch)."""
    w.clamp_(min=0.0)
    total = w.sum()
    if total <= 0:  # every weight clamped away: back to uniform
        w.fill_(1.0 / len(w))
    else:
        w.div_(total)


def easy_rows(probs: np.ndarray) -> np.ndarray:
    """Rows of B where every teacher's argmax is the same class (RAVEN's easy samples)."""
    hard = probs.argmax(-1)  # [K, n]
    return np.flatnonzero((hard == hard[0]).all(0))


def fit_weights(features: np.ndarray, probs: np.ndarray, cfg: Config, seed: int) -> dict:
    """Learn simplex weights over the teachers jointly with a linear softmax probe on `features`.

    probs: [K, n, 2] teachers' soft labels. Returns the final weights, their trajectory per epoch and the
    rows each epoch trained on (warm-up: the easy rows only)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    X = torch.tensor(x, dtype=torch.float32)
    P = torch.tensor(probs, dtype=torch.float32)  # [K, n, 2]
    n, d = X.shape
    head = torch.nn.Linear(d, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    w = torch.tensor(initial_weights(probs, cfg.init), dtype=torch.float32, requires_grad=cfg.learn_weights)
    groups = [{"params": head.parameters(), "lr": cfg.lr}]
    if cfg.learn_weights:
        groups.append({"params": [w], "lr": cfg.weights_lr})
    opt = torch.optim.Adam(groups)
    easy = easy_rows(probs)
    trajectory, rows_per_epoch = [w.detach().tolist()], []
    for epoch in range(cfg.epochs):
        rows = easy if epoch < cfg.warmup_epochs and len(easy) else np.arange(n)
        rows_per_epoch.append(int(len(rows)))
        order = torch.tensor(rows)[torch.randperm(len(rows), generator=g)]
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            target = torch.einsum("k,knc->nc", w, P[:, idx])
            logq = torch.log_softmax(head(X[idx]), -1)
            loss = -(target * logq).sum(-1).mean() + cfg.l2 * head.weight.pow(2).sum()
            if cfg.objective == "kl":  # minus the entropy of the combined labels: confidence earns nothing
                loss = loss + (target * torch.log(target.clamp_min(1e-12))).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cfg.learn_weights:
                with torch.no_grad():
                    project(w)
        trajectory.append(w.detach().tolist())
    return {"weights": w.detach().numpy().astype(np.float64), "trajectory": trajectory,
            "rows_per_epoch": rows_per_epoch, "easy_share": float(len(easy) / n)}


def build_labels(cfg: Config, ctx: MethodContext) -> LabelSet:
    names = (["weak"] if cfg.include_weak else []) + [
        f"{t.model} ({t.mode}{source_label(getattr(t, 'data', None))})" for t in cfg.teachers]
    probs = ([ctx.weak_labels] if cfg.include_weak else []) + [
        ctx.fit_teacher(t, f"{cfg.key}: teacher {i + 1}/{len(cfg.teachers)}") for i, t in enumerate(cfg.teachers)]
    probs = np.stack([np.asarray(p, dtype=np.float64) for p in probs])  # [K, n, 2]
    fit = fit_weights(ctx.features(["transfer"])["transfer"], probs, cfg, ctx.seed)
    labels = np.einsum("k,knc->nc", fit["weights"], probs).astype(np.float32)
    gold_b = ctx.labels("transfer")  # diagnostics only
    acc = [float((p.argmax(1) == gold_b).mean()) for p in probs]
    return LabelSet(targets=labels, diagnostics={
        "teachers": names, "teacher_accuracy_B": acc, "weights": fit["weights"].tolist(),
        "teacher_mean_entropy_B": mean_entropy(probs).tolist(), "objective": cfg.objective,
        "initial_weights": fit["trajectory"][0], "learned": cfg.learn_weights, "init": cfg.init,
        "easy_share_B": fit["easy_share"], "warmup_epochs": cfg.warmup_epochs,
        "weight_trajectory": fit["trajectory"],
        "ensemble_label_accuracy": float((labels.argmax(1) == gold_b).mean())})


def report_lines(key: str, entry: dict, results: dict) -> list[str]:
    """Each teacher's weight beside its accuracy on B (gold: reporting only)."""
    d = entry.get("diagnostics") or {}
    if "weights" not in d:
        return []
    if d["learned"]:
        how = (f"learned jointly with a linear probe on the strong model's features, objective "
               f"{d.get('objective', 'xent')} (start: {d['init']}; warm-up {d['warmup_epochs']} epochs on the "
               f"{d['easy_share_B']:.0%} of B where all teachers agree)")
    else:
        how = f"fixed at the start ({d['init']}); all teachers agree on {d['easy_share_B']:.0%} of B"
    entropy = d.get("teacher_mean_entropy_B") or [None] * len(d["teachers"])
    lines = ["", f"### Teachers of `{key}`", "", f"Weights {how}.", "",
             "| teacher | accuracy on B (%) | mean label entropy (nats) | start weight | final weight |",
             "|---|---|---|---|---|"]
    for name, a, h, w0, w in zip(d["teachers"], d["teacher_accuracy_B"], entropy, d["initial_weights"],
                                 d["weights"]):
        lines.append(f"| {name} | {a * 100:.1f} | {'—' if h is None else f'{h:.3f}'} | {w0:.3f} | {w:.3f} |")
    lines.append(f"\nCombined labels: {d['ensemble_label_accuracy'] * 100:.1f}% accurate on B.")
    return lines
