"""naive: fine-tune the strong model on the weak labels (Burns et al. 2023, §4.1)."""

from dataclasses import dataclass, field

import numpy as np

from pipeline.config import MethodConfig


@dataclass
class Config(MethodConfig):
    name: str = "naive"
    hard: bool = field(default=False, metadata={"help": "train on the weak argmax (one-hot) instead of its "
                                                        "probabilities"})


def build_labels(cfg: Config, ctx):
    from pipeline.methods import LabelSet

    soft = ctx.weak_soft_labels()  # [n, 2] on split B
    if cfg.hard:
        targets = np.eye(2)[soft.argmax(1)]
    else:
        targets = soft
    return LabelSet(targets=targets.astype(np.float32), diagnostics={"label_kind": "hard" if cfg.hard else "soft"})
