"""Losses of the strong student, selectable per transfer method (`loss: {name: ..., <options>}`).

Every loss maps (logits [B, 2], targets [B, 2] = the method's label distributions, rows summing to 1,
progress = optimiser step / total steps in [0, 1]) to a scalar, the mean over the batch, differentiable
with respect to the logits and computed in float32. `make_loss(cfg)` returns a fresh callable per training
run (logconf's rolling buffer is state). Adding a loss: one class taking the `LossConfig` and defining
`__call__(logits, targets, progress)`, one line in `LOSSES`; its options are a `LossConfig` subclass with
one line in `LOSS_CONFIGS` (`pipeline/config/losses.py`: recipes load without importing torch).

The loss is called once per micro-batch (and per process when training is distributed), so any batch
statistic (logconf's class prior and threshold) is a micro-batch statistic. Burns et al. compute the loss
on the whole optimiser batch (32 examples, `weak_to_strong/train.py`); with small micro-batches use
logconf's `prior: buffer`.

Sources:
- Burns et al. 2023, "Weak-to-strong generalization" (arXiv 2312.09390), code github.com/openai/weak-to-strong,
  `weak_to_strong/loss.py`: `xent_loss`, `logconf_loss_fn`, `product_loss_fn`.
- EleutherAI's replication github.com/EleutherAI/w2s, `w2s/loss.py`: `confidence_window_loss`,
  `log_confidence_loss` (its "entropy" loss is `log_confidence_loss(harden=False)`, see `w2s/sft.py`).
- Grandvalet & Bengio 2004, "Semi-supervised learning by entropy minimization" (NeurIPS).
"""

from typing import Callable

import torch
import torch.nn.functional as F

from pipeline.config.losses import LOSS_CONFIGS, LossConfig, XentConfig

__all__ = ["LOSSES", "LOSS_CONFIGS", "LossConfig", "make_loss", "harden", "xent"]



def xent(logits: torch.Tensor, targets: torch.Tensor, progress: float = 0.0) -> torch.Tensor:
    """Cross-entropy against soft or one-hot targets, mean_i -sum_c t_ic log softmax(z_i)_c.

    Burns et al.'s `xent_loss` (`weak_to_strong/loss.py`: `F.cross_entropy(logits, labels)` with
    probability targets), the weak-to-strong baseline; whether targets are hard is the caller's choice."""
    return -(targets.detach().float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def _warm(weight: float, warmup_frac: float, progress: float) -> float:
    """weight * min(1, progress / warmup_frac), clipped to [0, weight]; the full weight when warmup_frac is 0."""
    if warmup_frac <= 0:
        return weight
    return weight * min(1.0, max(0.0, progress / warmup_frac))


def harden(p1: torch.Tensor, prior1: float | torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot [B, 2]: class 1 for the examples whose P(class 1) lies in the top `prior1` share of `reference`
    (default: p1 itself), class 0 for the others.

    Burns et al. (`logconf_loss_fn`): `threshold = torch.quantile(preds[:, 0], mean_weak[1])`, class 1 where
    `preds[:, 0] < threshold`; here with preds[:, 0] = 1 - p1 and the quantile taken over `reference` (the
    rolling buffer in logconf's buffer mode). Ties at the threshold go to class 0, as in Burns et al.; a
    batch of one example is therefore always hardened to class 0.
    """
    p0 = 1 - p1.detach().float()
    ref0 = p0 if reference is None else 1 - reference.detach().float().to(p0.device)
    q = torch.as_tensor(prior1, dtype=ref0.dtype, device=ref0.device).clamp(0, 1)
    one = p0 < torch.quantile(ref0, q)
    return torch.stack([~one, one], dim=-1).float()


class Xent:
    """Cross-entropy on the labels; see `xent`."""

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        return xent(logits, targets)


class LogConf:
    """Auxiliary confidence loss (Burns et al. 2023, §4.3.2; `logconf_loss_fn` in openai/weak-to-strong
    `weak_to_strong/loss.py`):

        target = (1 - a_t) * labels + a_t * harden(student),   loss = xent(logits, target),
        a_t = aux_weight * min(1, progress / warmup_frac).

    harden() sets to class 1 the student's most confident class-1 predictions, as many as the labels'
    class-1 prior: prior = mean of targets[:, 1] and threshold = quantile of the student's P(class 0) at
    that prior (Burns et al.). The hardened target is detached.

    prior: batch  -- prior and quantile over the current batch (Burns et al.).
    prior: buffer -- both over a rolling buffer of the last `buffer_size` examples (detached student
                     P(class 1) and label P(class 1)), updated with the current batch before use. EleutherAI's
                     `log_confidence_loss` buffers only the predictions (buffer size = batch size) and keeps
                     the prior of the current batch; here the prior comes from the same examples as the
                     quantile, so that the hardened share of the buffer equals the buffer's prior.

    Deviation: the warm-up. Burns et al.'s code has `coef = 1 if step_frac > warmup_frac else step_frac`
    (a_t = aux_weight * progress during warm-up, then a jump to aux_weight); the paper (App. A.4) describes a
    linear warm-up to the final weight, which is what this does (as in openai/weak-to-strong PR #33 and
    EleutherAI's `min(1, step / warmup_steps)`).
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg
        self.buf_p1 = torch.empty(0)
        self.buf_prior = torch.empty(0)
        self.last_hard: torch.Tensor | None = None  # the latest hardened target, for inspection

    def __call__(self, logits, targets, progress):
        coef = _warm(self.cfg.aux_weight, self.cfg.warmup_frac, progress)
        targets = targets.detach().float()
        p1 = torch.softmax(logits.detach().float(), dim=-1)[:, 1]
        if self.cfg.prior == "buffer":
            n = self.cfg.buffer_size
            self.buf_p1 = torch.cat([self.buf_p1.to(p1.device), p1])[-n:]
            self.buf_prior = torch.cat([self.buf_prior.to(p1.device), targets[:, 1]])[-n:]
            hard = harden(p1, self.buf_prior.mean(), self.buf_p1)
        else:
            hard = harden(p1, targets[:, 1].mean())
        self.last_hard = hard
        return xent(logits, (1 - coef) * targets + coef * hard)


class Product:
    """Product loss (Burns et al.'s `product_loss_fn`, openai/weak-to-strong `weak_to_strong/loss.py`):

        target = normalise(softmax(z)^beta * labels^alpha)  (detached),   loss = xent(logits, target).

    The student keeps the part of the labels it already agrees with. Deviation: where both products are 0
    (hard label against a float32-saturated prediction) Burns et al. divide by 0 (NaN); here the row's
    target is 0 and the example contributes nothing. (`product_loss_fn` also takes a `warmup_frac` it never
    uses; there is none here.)
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        preds = torch.softmax(logits.detach().float(), dim=-1)
        target = preds.pow(self.cfg.beta) * targets.detach().float().pow(self.cfg.alpha)
        target = target / target.sum(-1, keepdim=True).clamp(min=1e-30)
        return xent(logits, target)


class Entropy:
    """Cross-entropy plus entropy minimisation (EleutherAI w2s "entropy" loss; Grandvalet & Bengio 2004):

        loss = (1 - a_t) * xent(logits, labels) + a_t * mean_i H(softmax(z_i)),   H(p) = -sum_c p_c log p_c,

    with the same warmed-up a_t = aux_weight * min(1, progress / warmup_frac) as logconf.

    Source: EleutherAI `w2s/sft.py` runs "entropy" as `log_confidence_loss(..., harden=False)` (`w2s/loss.py`),
    i.e. xent against (1 - a_t) * labels + a_t * softmax(z).detach(), whose value is exactly the formula above.
    Deviation: there the student's prediction is detached, and the gradient of xent(z, stopgrad(softmax(z)))
    with respect to z is softmax(z) - softmax(z) = 0, so the entropy term never acts (the loss trains like
    (1 - a_t) * xent). Here H is differentiated, so the term does minimise the student's entropy, as in
    Grandvalet & Bengio's entropy regularisation; no class prior is imposed (unlike logconf's hardening).
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        coef = _warm(self.cfg.aux_weight, self.cfg.warmup_frac, progress)
        logp = F.log_softmax(logits.float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
        return (1 - coef) * xent(logits, targets) + coef * entropy


class Window:
    """Confidence window (EleutherAI `confidence_window_loss`, `w2s/loss.py`):

        loss = (1 / B) * sum_i [max_c softmax(z_i)_c < 0.5 + radius] * xent_i(z_i, labels_i).

    Only the examples the *student* is unsure about are trained on (the mask depends on the student's
    prediction, not on the weak label's confidence); the sum is divided by the full batch size, as in
    EleutherAI's code. A batch with every example outside the window gives 0 with a grad_fn (zero grads).
    Not supported: EleutherAI's `radius: midweak` (median |weak P(class 1) - 0.5| over the training set);
    compute it from the labels and pass it as a number.
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, logits, targets, progress):
        logp = F.log_softmax(logits.float(), dim=-1)
        unsure = logp.detach().exp().max(-1).values < 0.5 + self.cfg.radius
        per = -(targets.detach().float() * logp).sum(-1)
        return torch.where(unsure, per, torch.zeros_like(per)).sum() / logits.shape[0]


LOSSES: dict[str, type] = {
    "xent": Xent,
    "logconf": LogConf,
    "product": Product,
    "entropy": Entropy,
    "window": Window,
}


def make_loss(cfg: LossConfig | None = None) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """A fresh loss callable for one training run (the default config gives xent)."""
    cfg = cfg or XentConfig()
    return LOSSES[cfg.name](cfg)
