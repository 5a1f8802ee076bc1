"""The one fine-tuning loop (on accelerate), used by weak, ceiling and every transfer method,
and the linear-head fit of `head` mode.
"""

import math

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_scheduler

from pipeline.distributed import compute_precision, sharded, upcast_trainable
from pipeline.losses import LossConfig, make_loss
from pipeline.predict import predict_proba, show_progress


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


class BestCheckpoint:
    """Early stopping: score the model on a held-out slice now and then, remember the best trainable
    weights (a CPU copy of only the parameters that train: adapters and head under LoRA), stop after
    `patience` evaluations without improvement, and restore the best weights at the end."""

    def __init__(self, es_cfg, val_targets: np.ndarray):
        self.cfg, self.targets = es_cfg, np.asarray(val_targets, dtype=np.float64)
        self.best, self.best_state, self.best_step, self.bad, self.history = None, None, None, 0, []

    def score(self, probs: np.ndarray) -> float:
        if self.cfg.metric == "accuracy":
            return float((probs.argmax(1) == self.targets.argmax(1)).mean())
        return float(-(self.targets * np.log(np.clip(probs, 1e-7, 1))).sum(1).mean())

    def update(self, step: int, probs: np.ndarray, params) -> bool:
        """Record one evaluation; returns True when training should stop."""
        value = self.score(probs)
        self.history.append({"step": step, self.cfg.metric: round(value, 5)})
        better = self.best is None or (value > self.best if self.cfg.metric == "accuracy" else value < self.best)
        if better:
            self.best, self.best_step, self.bad = value, step, 0
            self.best_state = {n: p.detach().to("cpu", copy=True) for n, p in params}
        else:
            self.bad += 1
        return self.cfg.patience > 0 and self.bad >= self.cfg.patience

    def restore(self, params) -> None:
        with torch.no_grad():
            for n, p in params:
                p.copy_(self.best_state[n].to(p.device))

    def summary(self, stopped: bool) -> dict:
        return {"select_on": self.cfg.select_on, "metric": self.cfg.metric, "best_step": self.best_step,
                f"best_{self.cfg.metric}": self.best, "stopped_early": stopped, "evaluations": self.history}


_WRAPPER_PARTS = {"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"}


def _plain_name(name: str) -> str:
    """A parameter's name in the unwrapped model: DDP's `module.` and FSDP / activation-checkpointing /
    compile wrapper components removed."""
    parts = [p for p in name.split(".") if p not in _WRAPPER_PARTS]
    return ".".join(parts[1:] if parts and parts[0] == "module" else parts)


def param_groups(named_params, ndims: dict[str, int], weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: weight decay on weight matrices, none on biases and
    norms. `ndims` maps the unwrapped model's parameter names to their dimensions; names, not the
    parameters' current shapes, decide, because FSDP's parameters are flat 1-D shards. A name that maps
    to no parameter of the model (FSDP's `_flat_param` without use_orig_params) is decayed."""
    decay, no_decay = [], []
    for name, p in named_params:
        if p.requires_grad:
            (decay if ndims.get(_plain_name(name), 2) >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _adamw(groups, lr: float):
    try:  # the fused kernel (CPU and CUDA in recent torch) does one pass over all parameters per step
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr)


def prepare_with_optimizer(accelerator, model, loader, cfg):
    """`accelerator.prepare` the model, an AdamW over its trainable parameters, and the loader.

    The optimizer must hold the parameters the prepared model trains. FSDP (v1) replaces them: with
    `cpu_ram_efficient_loading`, ranks > 0 load on the meta device and FSDP materialises new Parameter
    objects (`to_empty`), and it flattens them. So the model is prepared first and the optimizer built
    from the prepared model (accelerate's advice for FSDP). FSDP2 and DeepSpeed instead need model and
    optimizer in one `prepare` call and re-point the optimizer themselves.
    """
    from accelerate.utils import DistributedType

    ndims = {_plain_name(n): p.ndim for n, p in model.named_parameters()}
    together = getattr(accelerator, "is_fsdp2", False) or accelerator.distributed_type == DistributedType.DEEPSPEED
    if together:
        optimizer = _adamw(param_groups(model.named_parameters(), ndims, cfg.weight_decay), cfg.lr)
        return accelerator.prepare(model, optimizer, loader)
    model = accelerator.prepare(model)
    optimizer = _adamw(param_groups(model.named_parameters(), ndims, cfg.weight_decay), cfg.lr)
    optimizer, loader = accelerator.prepare(optimizer, loader)
    return model, optimizer, loader


def finetune(model, tokenizer, texts: list[str], targets: np.ndarray, cfg, max_length: int, accelerator,
             seed: int, loss: LossConfig | None = None, desc: str = "train",
             val: tuple[list[str], np.ndarray] | None = None) -> dict:
    """Fine-tune `model` in place on (text, target distribution) pairs; returns training stats.

    `val` (texts, target distributions) turns on early stopping per `cfg.early_stopping`: the model is
    scored on it `evals_per_epoch` times per epoch and the best weights are kept.
    """
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
    upcast_trainable(model, accelerator)
    accelerator.gradient_accumulation_steps = cfg.grad_accum
    model, optimizer, loader = prepare_with_optimizer(accelerator, model, loader, cfg)
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup", optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * total_steps), num_training_steps=total_steps)
    scheduler = accelerator.prepare(scheduler)
    loss_fn = make_loss(loss or LossConfig())
    keeper = BestCheckpoint(cfg.early_stopping, val[1]) if val is not None else None
    eval_every = max(1, steps_per_epoch // cfg.early_stopping.evals_per_epoch) if keeper else None
    trainable = lambda: [(n, p) for n, p in accelerator.unwrap_model(model).named_parameters()  # noqa: E731
                         if p.requires_grad]
    stopped = False
    precision = compute_precision(accelerator, model)
    model.train()
    step, losses = 0, []
    bar = tqdm(total=total_steps, desc=desc, unit="step", leave=False, disable=not show_progress(accelerator))
    tokens = 0
    while step < total_steps:
        for batch in loader:
            with accelerator.accumulate(model):
                targets = batch.pop("targets")
                with precision():
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
                accelerator.log({f"{desc}/loss": losses[-1], f"{desc}/lr": scheduler.get_last_lr()[0]}, step=step)
                if keeper and (step % eval_every == 0 or step >= total_steps):
                    probs = predict_proba(model, tokenizer, val[0], max_length, cfg.eval_batch_size, accelerator,
                                          desc=f"{desc} (validation)", during_training=True)
                    stopped = keeper.update(step, probs, trainable()) and step < total_steps
                    model.train()
                if step >= total_steps or stopped:
                    break
        if stopped:
            break
    bar.close()
    model.eval()
    accelerator.wait_for_everyone()
    if keeper:
        keeper.restore(trainable())
    if not sharded(accelerator):  # FSDP / DeepSpeed keep their wrapper: it holds the sharded weights
        model = accelerator.unwrap_model(model)
    accelerator.free_memory()  # drop the prepared references before the next model is trained
    return {"model": model, "steps": step, "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "tokens": tokens, "early_stopping": keeper.summary(stopped) if keeper else None}


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
    loss = loss or LossConfig()
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
