"""graph_smooth: weak labels smoothed by label propagation on a kNN graph of strong features (Lang et al. 2026, part 2).

Y <- alpha * S Y + (1 - alpha) * Y0 with S = D^-1/2 W D^-1/2 (Zhou et al. 2004), W the symmetrised cosine
kNN graph of the strong model's frozen features of B, then class-mass normalisation (Zhu et al. 2003) so
the smoothed labels keep the weak labels' class balance: raw propagation of near-0.5 weak labels drifts
to one class at alpha >= 0.7 (measured on the quickstart's weak labels).
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pipeline.config.schema import MethodConfig
from pipeline.methods.base import LabelSet

# soft labels over two classes: classification and preference (not generated answers)
TASKS = ("classification", "preference")


@dataclass
class Smoothing:
    """Options of label propagation on the kNN graph (graph_smooth's, and selective's `smoothing`)."""

    knn: int = field(default=10, metadata={"help": "neighbours per node of the cosine kNN graph"})
    alpha: float = field(default=0.7, metadata={"help": "propagation weight: 0 keeps the weak labels, ->1 "
                                                         "trusts the graph"})
    inputs: Literal["hard", "soft"] = field(default="soft", metadata={
        "help": "propagate the weak probabilities or their one-hot argmax (with one-hot inputs alpha <= 0.5 "
                "can never flip a label)"})
    balance: bool = field(default=True, metadata={"help": "shift the smoothed log-odds so the share of class 1 "
                                                          "equals the weak hard labels' share"})

    def validate(self) -> list[str]:
        errors = []
        if self.knn < 1:
            errors.append(f"knn: must be at least 1, got {self.knn}")
        if not 0 <= self.alpha < 1:
            errors.append(f"alpha: must be in [0, 1), got {self.alpha}")
        return errors


@dataclass
class Config(Smoothing, MethodConfig):
    name: str = "graph_smooth"


def knn_graph(features: np.ndarray, k: int, block: int = 1024) -> "torch.Tensor":  # noqa: F821
    """Symmetric sparse cosine kNN adjacency (negative similarities clipped to 0), built block by block so
    memory stays O(n * block + n * k) rather than O(n^2)."""
    import torch

    x = torch.nn.functional.normalize(torch.tensor(features, dtype=torch.float32), dim=1)
    n = len(x)
    k = min(k, n - 1)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        sim = x[start:start + block] @ x.T
        idx = torch.arange(start, min(start + block, n))
        sim[torch.arange(len(idx)), idx] = -float("inf")  # no self loops
        top = sim.topk(k, dim=1)
        rows.append(idx.repeat_interleave(k))
        cols.append(top.indices.reshape(-1))
        vals.append(top.values.reshape(-1).clamp(min=0))
    r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    # W = A + A^T: symmetric; an edge that is a neighbour from both ends counts twice (mutual neighbours).
    return torch.sparse_coo_tensor(torch.stack([torch.cat([r, c]), torch.cat([c, r])]), torch.cat([v, v]),
                                   (n, n), check_invariants=True).coalesce()


def propagate(features: np.ndarray, y0: np.ndarray, k: int, alpha: float, balance_to: float | None = None,
              tol: float = 1e-6, max_iter: int = 1000) -> np.ndarray:
    """Label propagation to convergence; returns label distributions [n, 2]. With `balance_to` = q, the
    log-odds are shifted so that a share q of examples ends up in class 1."""
    import torch

    w = knn_graph(features, k)
    deg = torch.sparse.sum(w, dim=1).to_dense().clamp(min=1e-12)
    inv_sqrt = deg.rsqrt()
    idx, val = w.indices(), w.values()
    s = torch.sparse_coo_tensor(idx, val * inv_sqrt[idx[0]] * inv_sqrt[idx[1]], w.shape,
                                check_invariants=True).coalesce()
    Y0 = torch.tensor(y0, dtype=torch.float32)
    Y = Y0.clone()
    for _ in range(max_iter):
        nxt = alpha * torch.sparse.mm(s, Y) + (1 - alpha) * Y0
        done = (nxt - Y).abs().max() < tol
        Y = nxt
        if done:
            break
    Y = Y.clamp(min=1e-9).numpy().astype(np.float64)
    p1 = Y[:, 1] / Y.sum(1)
    if balance_to is not None:
        logit = np.log(p1) - np.log1p(-np.clip(p1, 0, 1 - 1e-9))
        logit = logit - np.quantile(logit, 1 - balance_to)
        p1 = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p1, p1], axis=1)


def smooth(features: np.ndarray, soft: np.ndarray, knn: int, alpha: float, inputs: str = "soft",
           balance: bool = True) -> np.ndarray:
    """Smoothed version of the weak labels `soft` [n, 2] on the kNN graph of `features`."""
    hard = np.eye(2, dtype=np.float32)[soft.argmax(1)]
    y0 = hard if inputs == "hard" else soft
    return propagate(features, y0, knn, alpha, float(hard[:, 1].mean()) if balance else None)


def build_labels(cfg: Config, ctx) -> LabelSet:
    soft = ctx.weak_labels
    feats = ctx.features(["transfer"])["transfer"]
    smoothed = smooth(feats, soft, cfg.knn, cfg.alpha, cfg.inputs, cfg.balance)
    gold = ctx.labels("transfer")  # diagnostics only
    changed = smoothed.argmax(1) != soft.argmax(1)
    return LabelSet(targets=smoothed, diagnostics={
        "weak_label_accuracy_before": float((soft.argmax(1) == gold).mean()),
        "label_accuracy_after_smoothing": float((smoothed.argmax(1) == gold).mean()),
        "share_flipped_by_smoothing": float(changed.mean()),
        "flips_correct": int(((smoothed.argmax(1) == gold) & changed).sum()),
        "flips_wrong": int(((smoothed.argmax(1) != gold) & changed).sum()),
    })
