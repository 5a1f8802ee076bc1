"""Losses of the strong student, selectable per transfer method (`loss: {name: ..., <options>}`).

Every loss maps (logits [B, 2], targets [B, 2] = the method's label distributions, progress = optimiser
step / total steps in [0, 1]) to a scalar, the mean over the batch. `make_loss(cfg)` returns a fresh
callable per training run (logconf's rolling buffer is state). Adding a loss: one class with
`__call__`, one registry line, its options as fields of `LossConfig`.

Sources: Burns et al. 2023, "Weak-to-strong generalization", code github.com/openai/weak-to-strong
(`weak_to_strong/loss.py`: xent_loss, logconf_loss_fn, product_loss_fn); EleutherAI's replication
github.com/EleutherAI/w2s (`w2s/loss.py`: confidence_window_loss, log_entropy_loss).
"""

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F


def _help(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class LossConfig:
    name: Literal["xent", "logconf", "product", "entropy", "window"] = _help(
        "xent: cross-entropy on the labels; logconf: auxiliary confidence (Burns et al.); product: target "
        "∝ student^beta · labels^alpha; entropy: xent plus entropy minimisation; window: xent only where the "
        "student is unsure", default="xent")
    aux_weight: float = _help("logconf / entropy: final weight of the student's own (hardened) prediction or of "
                              "the entropy term; Burns et al.'s NLP runs used 0.5, EleutherAI's entropy loss 0.75",
                              default=0.5)
    warmup_frac: float = _help("logconf / entropy: fraction of training over which that weight rises linearly "
                               "from 0 (Burns et al.: 0.1)", default=0.1)
    prior: Literal["batch", "buffer"] = _help(
        "logconf: where the hardening threshold's class prior comes from: the current batch (Burns et al.) or "
        "a rolling buffer of the last `buffer_size` examples (steadier with small batches)", default="batch")
    buffer_size: int = _help("logconf with prior: buffer: examples the rolling buffer holds", default=512)
    alpha: float = _help("product: exponent of the labels", default=1.0)
    beta: float = _help("product: exponent of the student's predictions", default=1.0)
    radius: float = _help("window: train only on examples whose top student probability is below 0.5 + radius "
                          "(EleutherAI: 0.15)", default=0.15)

    def validate(self) -> list[str]:
        errors = []
        if not 0 <= self.aux_weight <= 1:
            errors.append(f"aux_weight: must be in [0, 1], got {self.aux_weight}")
        if not 0 <= self.warmup_frac <= 1:
            errors.append(f"warmup_frac: must be in [0, 1], got {self.warmup_frac}")
        if self.buffer_size < 2:
            errors.append(f"buffer_size: must be at least 2, got {self.buffer_size}")
        if self.alpha < 0 or self.beta < 0:
            errors.append(f"alpha, beta: must be >= 0, got {self.alpha}, {self.beta}")
        if not 0 < self.radius <= 0.5:
            errors.append(f"radius: must be in (0, 0.5], got {self.radius}")
        return errors


def xent(logits: torch.Tensor, targets: torch.Tensor, progress: float = 0.0) -> torch.Tensor:
    """Cross-entropy against soft (or one-hot) targets: mean_i -sum_c t_ic log softmax(z_i)_c (Burns `xent_loss`)."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def _warm(weight: float, warmup_frac: float, progress: float) -> float:
    return weight * (1.0 if warmup_frac <= 0 else min(1.0, progress / warmup_frac))


def harden(p1: torch.Tensor, prior1: float, reference: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot [B, 2]: class 1 where P(class 1) is above the (1 - prior1) quantile of `reference` (default p1),
    so that a share prior1 of the reference is hardened to class 1. Burns et al.:
    `threshold = torch.quantile(preds[:, 0], mean_weak[1])`, class 1 where preds[:, 0] < threshold."""
    ref = p1 if reference is None else reference
    threshold = torch.quantile(1 - ref.float(), float(prior1))
    one = (1 - p1) < threshold
    return torch.stack([~one, one], 1).float()


class Xent:
    def __init__(self, cfg: LossConfig):
        pass

    def __call__(self, logits, targets, progress):
        return xent(logits, targets)


class LogConf:
    """Auxiliary confidence loss (Burns et al. 2023, §4.3.2; `logconf_loss_fn`):

        target = (1 - a_t) · labels + a_t · harden(student),   loss = xent(logits, target)

    harden() thresholds the student's P(class 1) so that the labels' class-1 share (over the batch, or a
    rolling buffer) is hardened to class 1; the hardened target is detached. a_t = aux_weight ·
    min(1, progress / warmup_frac). Burns's code jumps instead (`coef = 1 if step_frac > warmup_frac else
    step_frac`, i.e. a_t = aux_weight · progress during warm-up, then aux_weight); the linear ramp avoids
    that discontinuity.
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg
        self.buf_p1, self.buf_prior = torch.empty(0), torch.empty(0)

    def __call__(self, logits, targets, progress):
        coef = _warm(self.cfg.aux_weight, self.cfg.warmup_frac, progress)
        p1 = torch.softmax(logits.float(), -1)[:, 1].detach()
        if self.cfg.prior == "buffer":
            n = self.cfg.buffer_size
            self.buf_p1 = torch.cat([self.buf_p1, p1.cpu()])[-n:]
            self.buf_prior = torch.cat([self.buf_prior, targets[:, 1].float().detach().cpu()])[-n:]
            prior, reference = float(self.buf_prior.mean()), self.buf_p1.to(p1.device)
        else:
            prior, reference = float(targets[:, 1].float().mean()), None
        target = (1 - coef) * targets.float() + coef * harden(p1, prior, reference)
        return xent(logits, target)


class Product:
    """Product loss (Burns et al.'s `product_loss_fn`): target ∝ student^beta · labels^alpha (detached,
    renormalised), loss = xent(logits, target). The student keeps what it already agrees with."""

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        preds = torch.softmax(logits.float(), -1)
        target = preds.pow(self.cfg.beta) * targets.float().pow(self.cfg.alpha)
        target = (target / target.sum(-1, keepdim=True).clamp(min=1e-12)).detach()
        return xent(logits, target)


class Entropy:
    """Entropy-minimisation variant of logconf (EleutherAI `log_entropy_loss`; Grandvalet & Bengio 2004):

        loss = (1 - a_t) · xent(logits, labels) + a_t · H(softmax(logits)),

    the same warmed-up a_t as logconf: the student is pushed to be confident without hardening a
    threshold (so no class prior is imposed)."""

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        coef = _warm(self.cfg.aux_weight, self.cfg.warmup_frac, progress)
        logp = F.log_softmax(logits.float(), -1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
        return (1 - coef) * xent(logits, targets) + coef * entropy


class Window:
    """Confidence window (EleutherAI `confidence_window_loss`): cross-entropy on the labels only for the
    examples the student is unsure about, max_c softmax(z)_c < 0.5 + radius, summed and divided by the
    full batch size (examples outside the window contribute 0)."""

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        logp = F.log_softmax(logits.float(), -1)
        unsure = logp.exp().max(-1).values < 0.5 + self.cfg.radius
        per = -(targets.float() * logp).sum(-1)
        return (per * unsure).sum() / logits.shape[0]


LOSSES: dict[str, type] = {"xent": Xent, "logconf": LogConf, "product": Product, "entropy": Entropy,
                           "window": Window}


def make_loss(cfg: LossConfig | None = None) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    cfg = cfg or LossConfig()
    return LOSSES[cfg.name](cfg)
