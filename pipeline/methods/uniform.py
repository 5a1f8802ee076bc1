"""uniform: the ensemble's baseline, every teacher's soft labels averaged with fixed equal weights
(`ensemble` with `learn_weights: false`, `init: uniform`; see ensemble.py)."""

from dataclasses import dataclass

from pipeline.methods.ensemble import TASKS, build_labels, preflight, report_lines
from pipeline.methods.ensemble import Config as EnsembleConfig

__all__ = ["Config", "TASKS", "build_labels", "preflight", "report_lines"]


@dataclass
class Config(EnsembleConfig):
    name: str = "uniform"
    learn_weights: bool = False
    init: str = "uniform"
    epochs: int = 1  # the probe is not needed to combine fixed weights; one cheap pass keeps the code path
    warmup_epochs: int = 0

    def validate(self) -> list[str]:
        errors = super().validate()
        if self.learn_weights or self.init != "uniform":
            errors.append("uniform keeps equal fixed weights: use `name: ensemble` to learn or initialise them")
        return errors
