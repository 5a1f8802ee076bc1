"""Each loss's options, one dataclass per loss (`loss: {name: <loss>, <its options>}` in a recipe).

The implementations live in `pipeline/losses.py`; these are plain data, so loading a recipe imports no
torch.
"""

from dataclasses import dataclass
from typing import Literal

from pipeline.config.fields import help_field

QUANTILE_MAX = 2 ** 24  # torch.quantile refuses larger inputs


@dataclass
class LossConfig:
    """Base of each loss's options; `name` picks the loss and with it the config class (`LOSS_CONFIGS`)."""

    name: str = help_field("loss: xent, logconf, product, entropy or window (`w2s keys loss`)", default="xent")

    def validate(self) -> list[str]:
        return []


@dataclass
class XentConfig(LossConfig):
    """xent: cross-entropy on the labels (Burns et al.)."""

    name: str = "xent"


@dataclass
class _Warmed:
    aux_weight: float = help_field(
        "final weight of the student's hardened prediction (logconf) or of the entropy term (entropy); Burns et "
        "al.'s code and paper (App. A.4, NLP) use 0.5, the paper 0.75 for its largest students", default=0.5)
    warmup_frac: float = help_field(
        "fraction of training over which that weight rises linearly from 0 (Burns et al.'s code: 0.1, with a "
        "step schedule; the paper, App. A.4, describes 20%)", default=0.1)

    def _warm_errors(self) -> list[str]:
        errors = []
        if not 0 <= self.aux_weight <= 1:
            errors.append(f"aux_weight: must be in [0, 1], got {self.aux_weight}")
        if not 0 <= self.warmup_frac <= 1:
            errors.append(f"warmup_frac: must be in [0, 1], got {self.warmup_frac}")
        return errors


@dataclass
class LogConfConfig(_Warmed, LossConfig):
    """logconf: auxiliary confidence loss (Burns et al.)."""

    name: str = "logconf"
    prior: Literal["batch", "buffer"] = help_field(
        "where the class-1 prior and the hardening threshold come from: the current (micro-)batch, as Burns et al., "
        "or a rolling buffer of the last buffer_size examples (steadier with small batches)", default="batch")
    buffer_size: int = help_field(
        "with prior: buffer: examples (student P(class 1) and labels) the rolling buffer holds; EleutherAI w2s "
        "buffers one batch", default=512)

    def validate(self) -> list[str]:
        errors = self._warm_errors()
        if self.prior not in ("batch", "buffer"):
            errors.append(f"prior: must be 'batch' or 'buffer', got {self.prior!r}")
        if not 1 <= self.buffer_size <= QUANTILE_MAX:
            errors.append(f"buffer_size: must be in [1, {QUANTILE_MAX}], got {self.buffer_size}")
        return errors


@dataclass
class ProductConfig(LossConfig):
    """product: xent against student^beta * labels^alpha (Burns et al.)."""

    name: str = "product"
    alpha: float = help_field("exponent of the labels (Burns et al.'s default 1)", default=1.0)
    beta: float = help_field("exponent of the student's predictions (Burns et al.'s default 1)", default=1.0)

    def validate(self) -> list[str]:
        return ([f"alpha: must be >= 0, got {self.alpha}"] if self.alpha < 0 else []) + \
               ([f"beta: must be >= 0, got {self.beta}"] if self.beta < 0 else [])


@dataclass
class EntropyConfig(_Warmed, LossConfig):
    """entropy: xent plus entropy minimisation (EleutherAI w2s)."""

    name: str = "entropy"

    def validate(self) -> list[str]:
        return self._warm_errors()


@dataclass
class WindowConfig(LossConfig):
    """window: xent only where the student is unsure (EleutherAI w2s)."""

    name: str = "window"
    radius: float = help_field(
        "train only on examples whose top student probability is below 0.5 + radius (EleutherAI w2s default 0.15)",
        default=0.15)

    def validate(self) -> list[str]:
        return [] if 0 < self.radius <= 0.5 else [f"radius: must be in (0, 0.5], got {self.radius}"]


LOSS_CONFIGS: dict[str, type[LossConfig]] = {
    "xent": XentConfig,
    "logconf": LogConfConfig,
    "product": ProductConfig,
    "entropy": EntropyConfig,
    "window": WindowConfig,
}
