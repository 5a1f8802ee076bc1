"""aux_conf: naive transfer trained with the auxiliary confidence loss (Burns et al. 2023, §4.3.2).

The labels are the weak model's, exactly as `naive`; what changes is the loss (`loss.name: logconf`):
the target mixes the weak label with the student's own hardened prediction, so the student may
disagree confidently with its supervisor instead of imitating its mistakes. Any other loss from
`pipeline/losses.py` can be chosen per method with `loss:`; this entry only changes the default.
"""

from dataclasses import dataclass, field

from pipeline.config.losses import LogConfConfig, LossConfig
from pipeline.methods import naive

# soft labels over two classes: classification and preference (not generated answers)
TASKS = ("classification", "preference")


@dataclass
class Config(naive.Config):
    name: str = "aux_conf"
    loss: LossConfig = field(default_factory=LogConfConfig, metadata={
        "help": "loss of the strong student; default logconf (auxiliary confidence)"})


build_labels = naive.build_labels
