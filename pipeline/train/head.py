"""`head` mode: a linear softmax head on frozen features, L2 strength by cross-validation; an exact
Newton solver for cross-entropy and a mini-batch AdamW solver for every other loss and early stopping."""

import math

import numpy as np
import torch

from pipeline.losses import LossConfig, XentConfig, make_loss
from pipeline.train.early_stopping import BestCheckpoint


def _fit_logistic(X: torch.Tensor, p: torch.Tensor, l2: float, max_iter: int,
                  w0: torch.Tensor | None = None) -> torch.Tensor:
    """L2-regularised logistic regression on soft targets p = P(class 1), by damped Newton steps.

    Minimises mean_i xent(p_i, sigmoid(x_i.w + b)) + l2 * |w|^2 (bias unpenalised). Newton needs ~10
    iterations whatever the conditioning, far fewer than first-order methods on 768-d features.

    Objective, gradient and iterates are float64; the Hessian and its Cholesky factor are float32 (the
    O(n d^2) and O(d^3) parts, 2.5x faster on a CPU). An inexact Hessian changes the path, not the fixed
    point (gradient zero): on mpnet features the fits agree with all-float64 Newton to 1e-13 in the
    weights, the same iterations and bitwise the same float32 head. A Hessian float32 cannot factor falls
    back to a float64 least-squares solve.
    """
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    Xh = Xb.float()
    reg = torch.full((d + 1,), 2 * l2, dtype=X.dtype)
    reg[-1] = 1e-8  # bias: unpenalised, tiny ridge keeps the Hessian invertible

    def objective(w):
        z = Xb @ w
        return (torch.nn.functional.softplus(z) - p * z).mean() + l2 * (w[:-1] ** 2).sum()

    w = torch.zeros(d + 1, dtype=X.dtype) if w0 is None else w0.clone()
    f = objective(w)
    for _ in range(max_iter):
        q = torch.sigmoid(Xb @ w)
        grad = Xb.T @ (q - p) / n + reg * w
        step = _newton_step(Xh, (q * (1 - q) / n).float(), reg, grad)
        t = 1.0
        while t > 1e-4:  # backtracking keeps every step a descent step
            f_new = objective(w - t * step)
            if f_new <= f:
                break
            t /= 2
        w, f_old, f = w - t * step, f, f_new
        if f_old - f < 1e-9 or grad.abs().max() < 1e-7:
            break
    return w


def _newton_step(Xh: torch.Tensor, s: torch.Tensor, reg: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """H^-1 grad for H = Xh^T diag(s) Xh + diag(reg), H formed and Cholesky-factored in float32."""
    hess = (Xh.T * s) @ Xh
    hess.diagonal().add_(reg.float())
    chol, info = torch.linalg.cholesky_ex(hess)
    if int(info) == 0:
        return torch.cholesky_solve(grad.float()[:, None], chol)[:, 0].double()
    return torch.linalg.lstsq(hess.double(), grad[:, None]).solution[:, 0]  # least squares: H may be singular


def _standardise(features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    X = torch.tensor(features, dtype=torch.float64)
    mean, std = X.mean(0), X.std(0).clamp(min=1e-6)
    return (X - mean) / std, mean, std


def _raw_head(w: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-logit head (class 0 logit fixed at 0) on raw features from w = [weights; bias] on standardised ones."""
    w_raw = w[:-1] / std
    b_raw = w[-1] - (mean / std) @ w[:-1]
    weight = torch.stack([torch.zeros_like(w_raw), w_raw], 1)
    bias = torch.stack([torch.zeros_like(b_raw), b_raw])
    return weight.float(), bias.float()


def fit_head(features: np.ndarray, targets: np.ndarray, head_cfg, seed: int, loss: LossConfig | None = None,
             val: tuple[np.ndarray, np.ndarray] | None = None, es_cfg=None) -> dict:
    """Linear softmax head on standardised frozen features, L2 strength chosen by k-fold CV of the
    soft cross-entropy on the head's own training targets (no other labels are looked at).

    Solver `newton` fits that objective exactly. Solver `adamw` (`auto` picks it for a loss other than
    xent or with early stopping on `val` = (features, targets)) trains the same head with the same L2 by
    mini-batch AdamW under `loss`, from zero, so the loss is what differs, not the regularisation.
    """
    loss = loss or XentConfig()
    solver = head_cfg.solver
    if solver == "auto":
        solver = "newton" if loss.name == "xent" and val is None else "adamw"
    X, mean, std = _standardise(features)
    # With fewer examples than dimensions, every Newton iterate stays in the row space of X, so fit in
    # its orthonormal coordinates Z = X V (exact: |w| = |beta| for w = V beta) and map back at the end.
    V = None
    if X.shape[0] < X.shape[1]:
        _, _, Vh = torch.linalg.svd(X, full_matrices=False)
        V = Vh.T
        X = X @ V
    p = torch.tensor(targets[:, 1], dtype=torch.float64)
    folds = np.array_split(np.random.default_rng(seed).permutation(len(X)), head_cfg.cv_folds)
    grid = sorted(head_cfg.l2_grid, reverse=True)  # strong to weak L2: each fit warm-starts the next
    cv = {}
    warm = [None] * len(folds)
    for l2 in grid:
        scores = []
        for k in range(len(folds)):
            held = torch.tensor(folds[k])
            fit = torch.tensor(np.concatenate([f for j, f in enumerate(folds) if j != k]))
            w = warm[k] = _fit_logistic(X[fit], p[fit], l2, head_cfg.max_iter, warm[k])
            z = X[held] @ w[:-1] + w[-1]
            scores.append(float((torch.nn.functional.softplus(z) - p[held] * z).mean()))
        cv[l2] = float(np.mean(scores))
    best = min(cv, key=cv.get)
    extra = {}
    if solver == "newton":
        w = _fit_logistic(X, p, best, head_cfg.max_iter)
        if V is not None:
            w = torch.cat([V @ w[:-1], w[-1:]])
    else:
        Xs = _standardise(features)[0]  # full coordinates (the loss need not keep iterates in the row space)
        Xv = None if val is None else (torch.tensor(val[0], dtype=torch.float64) - mean) / std
        w, extra = _train_head(Xs, torch.tensor(targets, dtype=torch.float32), best, head_cfg, seed, loss,
                               None if val is None else (Xv, val[1]), es_cfg)
    weight, bias = _raw_head(w, mean, std)
    return {"weight": weight, "bias": bias, "l2": best, "cv_xent": cv, "solver": solver, **extra}


def _train_head(X: torch.Tensor, targets: torch.Tensor, l2: float, head_cfg, seed: int, loss: LossConfig,
                val, es_cfg) -> tuple[torch.Tensor, dict]:
    """Mini-batch AdamW on the head [w; b] (class-0 logit fixed at 0), objective mean loss + l2 |w|^2,
    cosine-decayed learning rate; with `val`, the best evaluation's weights are returned."""
    X = X.float()
    n, d = X.shape
    w = torch.zeros(d + 1, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=head_cfg.lr, weight_decay=0.0)
    per_epoch = math.ceil(n / head_cfg.batch_size)
    total = head_cfg.epochs * per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    loss_fn = make_loss(loss)
    g = torch.Generator().manual_seed(seed)
    keeper = BestCheckpoint(es_cfg, val[1]) if val is not None else None
    eval_every = max(1, per_epoch // es_cfg.evals_per_epoch) if keeper else None
    Xv = None if val is None else val[0].float()
    step, stopped, last = 0, False, []
    for _ in range(head_cfg.epochs):
        for idx in torch.randperm(n, generator=g).split(head_cfg.batch_size):
            z = X[idx] @ w[:-1] + w[-1]
            logits = torch.stack([torch.zeros_like(z), z], 1)
            value = loss_fn(logits, targets[idx], step / total) + l2 * (w[:-1] ** 2).sum()
            opt.zero_grad()
            value.backward()
            opt.step()
            sched.step()
            step += 1
            last.append(value.item())
            if keeper and (step % eval_every == 0 or step == total):
                with torch.no_grad():
                    p1 = torch.sigmoid(Xv @ w[:-1] + w[-1]).double().numpy()
                stopped = keeper.update(step, np.stack([1 - p1, p1], 1), [("w", w)]) and step < total
                if stopped:
                    break
        if stopped:
            break
    if keeper:
        keeper.restore([("w", w)])
    extra = {"train_steps": step, "final_loss": float(np.mean(last[-20:]))}
    if keeper:
        extra["early_stopping"] = keeper.summary(stopped)
    return w.detach().double(), extra


def head_proba(head: dict, features: np.ndarray) -> np.ndarray:
    logits = torch.tensor(features, dtype=torch.float32) @ head["weight"] + head["bias"]
    return torch.softmax(logits, -1).numpy()
