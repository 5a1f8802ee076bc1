"""uniform: the ensemble's baseline, every teacher's soft labels averaged with fixed equal weights
(`ensemble` with `learn_weights: false`, `init: uniform`; see ensemble.py)."""

from dataclasses import dataclass, field

from pipeline.methods.ensemble import TASKS, build_labels, preflight, report_lines
from pipeline.methods.ensemble import Config as EnsembleConfig

__all__ = ["Config", "TASKS", "build_labels", "preflight", "report_lines"]


@dataclass
class Config(EnsembleConfig):
    name: str = "uniform"
    learn_weights: bool = field(default=False, metadata={"help": "fixed equal weights (keep false)"})
    init: str = field(default="uniform", metadata={"help": "equal starting (and final) weights (keep uniform)"})
    epochs: int = field(default=1, metadata={"help": "the probe is not needed for fixed weights: one cheap pass"})
    warmup_epochs: int = field(default=0, metadata={"help": "no warm-up: nothing is learned"})

    def validate(self) -> list[str]:
        errors = super().validate()
        if self.learn_weights or self.init != "uniform":
            errors.append("uniform keeps equal fixed weights: use `name: ensemble` to learn or initialise them")
        return errors
