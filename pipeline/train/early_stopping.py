"""Early stopping: best-checkpoint selection on a held-out slice, shared by the fine-tuning loop and the
linear head's AdamW solver."""

import numpy as np
import torch


class BestCheckpoint:
    """Early stopping: score the model on a held-out slice now and then, remember the best trainable
    weights (a CPU copy of only the parameters that train: adapters and head under LoRA), stop after
    `patience` evaluations without improvement, and restore the best weights at the end."""

    def __init__(self, es_cfg, val_targets: np.ndarray):
        self.cfg, self.targets = es_cfg, np.asarray(val_targets, dtype=np.float64)
        self.best, self.best_state, self.best_step, self.bad, self.history = None, None, None, 0, []

    def score(self, probs: np.ndarray) -> float:
        if self.cfg.metric == "accuracy":
            return float((probs.argmax(1) == self.targets.argmax(1)).mean())
        return float(-(self.targets * np.log(np.clip(probs, 1e-7, 1))).sum(1).mean())

    def update(self, step: int, probs: np.ndarray, params) -> bool:
        """Record one evaluation; returns True when training should stop."""
        value = self.score(probs)
        self.history.append({"step": step, self.cfg.metric: round(value, 5)})
        better = self.best is None or (value > self.best if self.cfg.metric == "accuracy" else value < self.best)
        if better:
            self.best, self.best_step, self.bad = value, step, 0
            self.best_state = {n: p.detach().to("cpu", copy=True) for n, p in params}
        else:
            self.bad += 1
        return self.cfg.patience > 0 and self.bad >= self.cfg.patience

    def restore(self, params) -> None:
        with torch.no_grad():
            for n, p in params:
                p.copy_(self.best_state[n].to(p.device))

    def summary(self, stopped: bool) -> dict:
        return {"select_on": self.cfg.select_on, "metric": self.cfg.metric, "best_step": self.best_step,
                f"best_{self.cfg.metric}": self.best, "stopped_early": stopped, "evaluations": self.history}
