"""naive: fine-tune the strong model on the weak labels (Burns et al. 2023, §4.1)."""

from dataclasses import dataclass

import numpy as np

from pipeline.config.schema import MethodConfig
from pipeline.methods.base import LabelSet


@dataclass
class Config(MethodConfig):
    name: str = "naive"


def build_labels(cfg: Config, ctx) -> LabelSet:
    """The weak model's soft labels on B, unchanged (`hard: true` trains on their argmax); a generation
    task's weak answers."""
    return LabelSet(targets=ctx.weak_labels if ctx.task == "generation" else ctx.weak_labels.astype(np.float32),
                    diagnostics={"label_kind": "weak answers" if ctx.task == "generation"
                                 else "hard" if cfg.hard else "soft"})
