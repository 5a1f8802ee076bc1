"""The one fine-tuning loop (on accelerate), used by weak, ceiling and every transfer method in full
and lora modes: length-grouped batches, AdamW over the prepared model, warm-up + schedule, clipping,
early stopping on a held-out slice.
"""

import itertools
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_scheduler

from pipeline.distributed import compute_precision, sharded, upcast_trainable
from pipeline.errors import UserError
from pipeline.losses import LossConfig, make_loss
from pipeline.predict import encode, flatten, is_pairs, length, pair_logits, predict_proba, show_progress
from pipeline.train.early_stopping import BestCheckpoint


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


def finetune(model, tokenizer, texts: list, targets: np.ndarray, cfg, max_length: int, accelerator,
             seed: int, loss: LossConfig | None = None, desc: str = "train",
             val: tuple[list[str], np.ndarray] | None = None, checkpoint_dir=None) -> dict:
    """Fine-tune `model` in place on (text, target distribution) pairs; returns training stats. A
    preference task's texts are (A, B) pairs and `model` a scalar-reward model: its class logits are
    (r_B, r_A) (`pair_logits`), so the loss is Bradley-Terry on the soft preferences `targets[:, 1]`.

    `val` (texts, target distributions) turns on early stopping per `cfg.early_stopping`: the model is
    scored on it `evals_per_epoch` times per epoch and the best weights are kept.
    """
    pairs = is_pairs(texts)
    enc = encode(tokenizer, texts, max_length)
    items = [{"x": enc[i], "targets": targets[i]} for i in range(len(texts))]
    pad = DataCollatorWithPadding(tokenizer)

    def collate(batch):
        out = pad(flatten([b["x"] for b in batch]))
        out["targets"] = torch.tensor(np.stack([b["targets"] for b in batch]), dtype=torch.float32)
        return out

    loss_fn = make_loss(loss)

    def batch_loss(model, batch, progress, precision):
        targets = batch.pop("targets")
        with precision():
            logits = model(**batch).logits
            if pairs:
                logits = pair_logits(logits)
        return loss_fn(logits, targets, progress)

    validate = None
    if val is not None:
        def validate(model, desc):
            return predict_proba(model, tokenizer, val[0], max_length, cfg.eval_batch_size, accelerator, desc=desc,
                                 during_training=True)
    return train_loop(model, items, [length(x) for x in enc], collate, batch_loss, cfg, accelerator, seed, desc,
                      None if val is None else (val[1], validate), checkpoint_dir)


class Checkpoints:
    """Mid-stage checkpoints: accelerate's `save_state` (weights or adapter, optimiser, scheduler, every
    process's RNG states) plus the loop's position (step, epoch, batches of that epoch consumed, losses),
    written into a temporary folder and renamed onto `<dir>/state` (a kill mid-save leaves the previous one)."""

    def __init__(self, folder, cfg, accelerator):
        self.dir = Path(folder) if folder is not None else None
        self.every, self.minutes, self.keep = cfg.checkpoint_every, cfg.checkpoint_minutes, cfg.keep_checkpoints
        self.on = self.dir is not None and (self.every > 0 or self.minutes > 0) and not cfg.early_stopping.enabled
        self.accelerator, self.last = accelerator, time.monotonic()

    def due(self, step: int, total: int) -> bool:
        if not self.on or step >= total:
            return False
        return (self.every > 0 and step % self.every == 0) or (
            self.minutes > 0 and time.monotonic() - self.last >= 60 * self.minutes)

    def save(self, position: dict) -> None:
        acc = self.accelerator
        tmp = self.dir / f".state-{position['step']}"
        if acc.is_main_process:
            self.dir.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=False)  # every process: FSDP / DeepSpeed save their shards
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / "position.json").write_text(json.dumps(position))
            old = self.dir / ".state-old"
            if (self.dir / "state").exists():
                (self.dir / "state").replace(old)
            tmp.replace(self.dir / "state")
            shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        self.last = time.monotonic()

    def load(self) -> dict | None:
        """The saved position after restoring the state into the prepared objects, or None."""
        state = self.dir / "state" if self.on else None
        if state is None or not (state / "position.json").exists():
            return None
        try:
            self.accelerator.load_state(str(state))
            return json.loads((state / "position.json").read_text())
        except Exception as e:  # torch.load's and safetensors' errors on a damaged file have no common base
            raise UserError(f"the mid-training checkpoint in {state} cannot be read ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'damaged'})",
                            f"delete {self.dir} to train this stage from step 0 (or rerun it with --force-stage)"
                            ) from None

    def finish(self) -> None:
        if self.on and not self.keep and self.accelerator.is_main_process:
            for p in self.dir.glob("*state*"):
                shutil.rmtree(p, ignore_errors=True)


def train_loop(model, items: list, lengths: list[int], collate, batch_loss, cfg, accelerator, seed: int,
               desc: str = "train", val=None, checkpoint_dir=None) -> dict:
    """The optimisation loop every fine-tuning shares: length-grouped batches of `items` (collated by
    `collate`), AdamW over the prepared model, warm-up + schedule, accumulation, clipping, and early
    stopping when `val` = (validation targets, validate(model, desc) -> P(class)) is given.
    `batch_loss(model, batch, progress in [0, 1), precision)` returns the loss of one batch. With
    `checkpoint_dir` and `cfg.checkpoint_every` / `checkpoint_minutes`, the state is saved there as it
    trains and a later call resumes from the last save (the same weights as an uninterrupted run)."""
    sampler = LengthGroupedBatches(lengths, cfg.batch_size, seed, cfg.group_by_length)
    loader = torch.utils.data.DataLoader(items, batch_sampler=sampler, collate_fn=collate)
    upcast_trainable(model, accelerator)
    accelerator.gradient_accumulation_steps = cfg.grad_accum
    model, optimizer, loader = prepare_with_optimizer(accelerator, model, loader, cfg)
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup", optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * total_steps), num_training_steps=total_steps)
    scheduler = accelerator.prepare(scheduler)
    keeper = BestCheckpoint(cfg.early_stopping, val[0]) if val is not None else None
    eval_every = max(1, steps_per_epoch // cfg.early_stopping.evals_per_epoch) if keeper else None
    trainable = lambda: [(n, p) for n, p in accelerator.unwrap_model(model).named_parameters()  # noqa: E731
                         if p.requires_grad]
    stopped = False
    precision = compute_precision(accelerator, model)
    model.train()
    step, losses, tokens, epoch, skip = 0, [], 0, 0, 0
    checkpoints = Checkpoints(checkpoint_dir, cfg, accelerator)
    resumed = checkpoints.load()
    rng = torch.get_rng_state()  # as restored from the checkpoint
    if resumed:
        step, losses, tokens = resumed["step"], resumed["losses"], resumed["tokens"]
        epoch, skip = resumed["epoch"], resumed["batches"]
    bar = tqdm(total=total_steps, initial=step, desc=desc, unit="step", leave=False,
               disable=not show_progress(accelerator))
    while step < total_steps:
        sampler.epoch = epoch  # the epoch's batch order depends on (seed, epoch) only
        batches = skip
        epoch_loader = iter(accelerator.skip_first_batches(loader, skip) if skip else loader)
        if skip:  # an epoch's first batch draws from torch's RNG (the loader's seed); the interrupted run made
            first = next(epoch_loader, None)  # that draw before its checkpoint, so restore the RNG after it
            torch.set_rng_state(rng)
            epoch_loader = itertools.chain([] if first is None else [first], epoch_loader)
        skip = 0
        for batch in epoch_loader:
            batches += 1
            with accelerator.accumulate(model):
                value = batch_loss(model, batch, step / total_steps, precision)
                finite = torch.isfinite(value.detach()).reshape(1).float()
                if accelerator.num_processes > 1:  # every rank stops together when any rank diverged
                    finite = accelerator.reduce(finite, reduction="mean")
                if float(finite) < 1:
                    raise UserError(f"{desc}: the training loss is not finite ({value.item()}) at optimiser step "
                                    f"{step + 1} of {total_steps} (lr {cfg.lr:g}): training diverged",
                                    "lower train.lr, or keep gradient clipping on (train.max_grad_norm, e.g. 1.0)")
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
                    probs = val[1](model, f"{desc} (validation)")
                    stopped = keeper.update(step, probs, trainable()) and step < total_steps
                    model.train()
                if step >= total_steps or stopped:
                    break
                if checkpoints.due(step, total_steps):
                    done_epoch = batches >= len(loader)
                    checkpoints.save({"step": step, "losses": losses, "tokens": tokens,
                                      "epoch": epoch + done_epoch, "batches": 0 if done_epoch else batches})
        epoch += 1
        if stopped:
            break
    bar.close()
    checkpoints.finish()
    model.eval()
    accelerator.wait_for_everyone()
    if keeper:
        keeper.restore(trainable())
    if not sharded(accelerator):  # FSDP / DeepSpeed keep their wrapper: it holds the sharded weights
        model = accelerator.unwrap_model(model)
    accelerator.free_memory()  # drop the prepared references before the next model is trained
    return {"model": model, "steps": step, "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "tokens": tokens, "early_stopping": keeper.summary(stopped) if keeper else None,
            **({"resumed_from_step": resumed["step"]} if resumed else {})}
