"""What every task kind shares: a split's examples (`Split`) and one training run (`Fit`)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass
class Split:
    """One split's examples: input texts, gold 0/1 labels, row ids."""

    texts: list[str]
    labels: np.ndarray
    ids: list[int]


@dataclass
class Fit:
    """One training run: the model spec of a role, trained on `targets` for rows of one split."""

    role: object  # ModelConfig of the weak or strong model
    split: str  # the training split
    targets: np.ndarray  # [len(rows), 2] target distributions
    desc: str
    rows: Optional[np.ndarray] = None  # rows of `split` to train on (None: all, in order)
    loss: object = None  # LossConfig (None: xent)
    out_dir: Optional[Path] = None  # save the trained model here (None: not saved)
