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
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
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


def _fit_linear(X: torch.Tensor, Y: torch.Tensor, l2: float, max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    W = torch.zeros(X.shape[1], Y.shape[1], dtype=X.dtype, requires_grad=True)
    b = torch.zeros(Y.shape[1], dtype=X.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = LOSSES["xent"](X @ W + b, Y) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def fit_head(features: np.ndarray, targets: np.ndarray, head_cfg, seed: int) -> dict:
    """Linear softmax head on standardised frozen features, L2 strength chosen by k-fold CV of the
    soft cross-entropy on the head's own training targets (no other labels are looked at)."""
    X = torch.tensor(features, dtype=torch.float64)
    mean, std = X.mean(0), X.std(0).clamp(min=1e-6)
    X = (X - mean) / std
    Y = torch.tensor(targets, dtype=torch.float64)
    folds = np.array_split(np.random.default_rng(seed).permutation(len(X)), head_cfg.cv_folds)
    cv = {}
    for l2 in head_cfg.l2_grid:
        scores = []
        for k in range(len(folds)):
            val = torch.tensor(folds[k])
            fit = torch.tensor(np.concatenate([f for j, f in enumerate(folds) if j != k]))
            W, b = _fit_linear(X[fit], Y[fit], l2, head_cfg.max_iter)
            scores.append(float(LOSSES["xent"](X[val] @ W + b, Y[val])))
        cv[l2] = float(np.mean(scores))
    best = min(cv, key=cv.get)
    W, b = _fit_linear(X, Y, best, head_cfg.max_iter)
    # Fold the standardisation into the weights so the head applies to raw features.
    W_raw = W / std.unsqueeze(1)
    b_raw = b - (mean / std) @ W
    return {"weight": W_raw.float(), "bias": b_raw.float(), "l2": best, "cv_xent": cv}


def head_proba(head: dict, features: np.ndarray) -> np.ndarray:
    logits = torch.tensor(features, dtype=torch.float32) @ head["weight"] + head["bias"]
    return torch.softmax(logits, -1).numpy()
