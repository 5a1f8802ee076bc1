"""The one fine-tuning loop (on accelerate), used by weak, ceiling and every transfer method,
and the linear-head fit of `head` mode.
"""

import math

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_scheduler

from pipeline.losses import LOSSES
from pipeline.predict import show_progress


class LengthGroupedBatches:
    """Shuffled batches of similar-length examples (less padding); a new order each epoch, fixed by seed.

    Like transformers' LengthGroupedSampler: shuffle, cut into mega-batches of 50 batches, sort each
    by length, cut into batches, shuffle the batches.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: bool = True):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.epoch = 0

    def __len__(self):
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        g = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        perm = g.permutation(len(self.lengths))
        if self.group:
            mega = self.batch_size * 50
            perm = np.concatenate([sorted(perm[i:i + mega], key=lambda j: -self.lengths[j])
                                   for i in range(0, len(perm), mega)])
        batches = [perm[i:i + self.batch_size].tolist() for i in range(0, len(perm), self.batch_size)]
        for b in g.permutation(len(batches)):
            yield batches[b]


def finetune(model, tokenizer, texts: list[str], targets: np.ndarray, cfg, max_length: int, accelerator,
             seed: int, loss: str = "xent", desc: str = "train") -> dict:
    """Fine-tune `model` in place on (text, target distribution) pairs; returns training stats."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    items = [{**{k: enc[k][i] for k in keys}, "targets": targets[i]} for i in range(len(texts))]
    pad = DataCollatorWithPadding(tokenizer)

    def collate(batch):
        out = pad([{k: b[k] for k in keys} for b in batch])
        out["targets"] = torch.tensor(np.stack([b["targets"] for b in batch]), dtype=torch.float32)
        return out

    sampler = LengthGroupedBatches([len(x) for x in enc["input_ids"]], cfg.batch_size, seed, cfg.group_by_length)
    loader = torch.utils.data.DataLoader(items, batch_sampler=sampler, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases and norms are not decayed
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel (CPU and CUDA in recent torch) does one pass over all parameters per step
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    accelerator.gradient_accumulation_steps = cfg.grad_accum
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup", optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * total_steps), num_training_steps=total_steps)
    scheduler = accelerator.prepare(scheduler)
    loss_fn = LOSSES[loss]
    model.train()
    step, losses = 0, []
    bar = tqdm(total=total_steps, desc=desc, unit="step", leave=False, disable=not show_progress(accelerator))
    tokens = 0
    while step < total_steps:
        for batch in loader:
            with accelerator.accumulate(model):
                targets = batch.pop("targets")
                logits = model(**batch).logits
                value = loss_fn(logits, targets, step / total_steps)
                accelerator.backward(value)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            tokens += int(batch["attention_mask"].sum())
            if accelerator.sync_gradients:
                step += 1
                losses.append(value.item())
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                if step >= total_steps:
                    break
    bar.close()
    model.eval()
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    accelerator.free_memory()  # drop the prepared references before the next model is trained
    return {"model": model, "steps": step, "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "tokens": tokens}


def _fit_logistic(X: torch.Tensor, p: torch.Tensor, l2: float, max_iter: int,
                  w0: torch.Tensor | None = None) -> torch.Tensor:
    """L2-regularised logistic regression on soft targets p = P(class 1), by damped Newton steps.

    Minimises mean_i xent(p_i, sigmoid(x_i.w + b)) + l2 * |w|^2 (bias unpenalised). Newton needs ~10
    iterations whatever the conditioning, far fewer than first-order methods on 768-d features.
    """
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
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
        hess = (Xb.T * (q * (1 - q) / n)) @ Xb + torch.diag(reg)
        step = torch.linalg.solve(hess, grad)
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


def fit_head(features: np.ndarray, targets: np.ndarray, head_cfg, seed: int) -> dict:
    """Linear softmax head on standardised frozen features, L2 strength chosen by k-fold CV of the
    soft cross-entropy on the head's own training targets (no other labels are looked at)."""
    X = torch.tensor(features, dtype=torch.float64)
    mean, std = X.mean(0), X.std(0).clamp(min=1e-6)
    X = (X - mean) / std
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
            val = torch.tensor(folds[k])
            fit = torch.tensor(np.concatenate([f for j, f in enumerate(folds) if j != k]))
            w = warm[k] = _fit_logistic(X[fit], p[fit], l2, head_cfg.max_iter, warm[k])
            z = X[val] @ w[:-1] + w[-1]
            scores.append(float((torch.nn.functional.softplus(z) - p[val] * z).mean()))
        cv[l2] = float(np.mean(scores))
    best = min(cv, key=cv.get)
    w = _fit_logistic(X, p, best, head_cfg.max_iter)
    if V is not None:
        w = torch.cat([V @ w[:-1], w[-1:]])
    # A 2-logit head (class 0 logit fixed at 0) on raw features: fold the standardisation into it.
    w_raw = w[:-1] / std
    b_raw = w[-1] - (mean / std) @ w[:-1]
    weight = torch.stack([torch.zeros_like(w_raw), w_raw], 1)
    bias = torch.stack([torch.zeros_like(b_raw), b_raw])
    return {"weight": weight.float(), "bias": bias.float(), "l2": best, "cv_xent": cv}


def head_proba(head: dict, features: np.ndarray) -> np.ndarray:
    logits = torch.tensor(features, dtype=torch.float32) @ head["weight"] + head["bias"]
    return torch.softmax(logits, -1).numpy()
