"""Synthetic theory stage (docs/THEORY.md): four reconstructed W2S settings with checkable predictions P1-P14.

`run(cfg, out_dir)` simulates the enabled settings, writes the plots and then `metrics.json` (last, atomically).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from pipeline.errors import UserError
from pipeline.theory.config import CnnConfig, LogisticConfig, RidgeConfig, TheoryConfig, TwoLayerConfig

__all__ = ["TheoryConfig", "TwoLayerConfig", "LogisticConfig", "CnnConfig", "RidgeConfig", "run"]


def run(cfg: TheoryConfig, out_dir: Path, progress: bool = True) -> dict:
    """Run the enabled settings, write plots and out_dir/metrics.json (last, atomically); returns the metrics."""
    start = time.perf_counter()
    # imported here so that loading a recipe (pipeline.config imports TheoryConfig) pulls in no torch/matplotlib
    import torch

    from pipeline.theory import cnn, logistic, ridge, two_layer
    from pipeline.theory.report import check_predictions, make_plots

    errors = cfg.validate()
    if errors:
        raise UserError("invalid theory config:\n  " + "\n  ".join(errors))
    dtype, device = getattr(torch, cfg.dtype), torch.device(cfg.device)
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as e:  # torch asserts when it was built without that backend
        raise UserError(f"theory.device: {cfg.device!r} is not available here ({e})",
                        hint="set theory.device=cpu (the simulations take seconds on CPU)") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    metrics: dict = {"two_layer": [], "two_layer_ablation": None, "logistic": [], "cnn": [], "ridge": [],
                     "timings_s": {}}
    threads = torch.get_num_threads()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    try:
        settings = (("two_layer", two_layer, cfg.two_layer), ("logistic", logistic, cfg.logistic),
                    ("cnn", cnn, cfg.cnn), ("ridge", ridge, cfg.ridge))
        for name, setting, sub in settings:
            if cfg.enabled and sub.enabled:
                t0 = time.perf_counter()
                metrics.update(setting.run(sub, cfg.seed, dtype, device, progress))
                metrics["timings_s"][name] = round(time.perf_counter() - t0, 2)
    finally:
        torch.set_num_threads(threads)  # the rest of the run keeps its own setting
    metrics["config"] = dataclasses.asdict(cfg)
    metrics["predictions"] = check_predictions(metrics)
    metrics["plots"] = make_plots(metrics, out_dir)
    metrics["env"] = {"torch": torch.__version__, "device": str(device),
                      "threads": cfg.num_threads if cfg.num_threads > 0 else threads}
    metrics["wall_time_s"] = round(time.perf_counter() - start, 2)
    _write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temp file in the same directory, then rename: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
