"""The one place an `Accelerator` is built from a recipe (precision, batch splitting, trackers) and where
run messages are logged. The hardware (processes, GPUs, FSDP, DeepSpeed) comes from
`accelerate launch` and its config file (recipes/accelerate/)."""

import logging
import sys

from pipeline.errors import UserError


def _no_accelerator_device() -> bool:
    import torch
    from accelerate.utils import is_mps_available, is_npu_available, is_xpu_available

    return not (torch.cuda.is_available() or is_xpu_available() or is_npu_available() or is_mps_available())


def make_accelerator(recipe, run_dir=None):
    """Accelerator for a run.

    - `train.batch_size` is the global batch: batches are split across processes (`split_batches`), so N
      processes take the same optimiser steps on the same examples as one process.
    - Without a GPU the processes run on CPU: a 2-process launch (recipes/accelerate/cpu_ddp.yaml) then
      gives 2 gloo ranks. (accelerate's own `--cpu` / `use_cpu: true` start a single process.)
    - `runtime.mixed_precision` overrides the launch config's; `runtime.trackers` are opt-in.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    rt = recipe.runtime
    cpu = _no_accelerator_device()
    if rt.mixed_precision == "fp16" and cpu:
        raise UserError("runtime.mixed_precision: fp16 needs a GPU; none is visible here",
                        "use runtime.mixed_precision=bf16 (CPUs with bf16 support) or no")
    kwargs = {"cpu": cpu, "dataloader_config": DataLoaderConfiguration(split_batches=True)}
    if rt.mixed_precision is not None:
        kwargs["mixed_precision"] = rt.mixed_precision
    if rt.trackers:
        _check_trackers(rt.trackers)
        kwargs["log_with"] = list(rt.trackers)
        kwargs["project_dir"] = str(rt.tracker_dir or (run_dir / "trackers" if run_dir is not None else "trackers"))
    from accelerate.state import AcceleratorState

    # One process may run several recipes (tests, notebooks, sweeps): the precision of the last one must not
    # stick. Only the accelerator-level state is reset; the process group (PartialState) is kept.
    AcceleratorState._reset_state()
    try:
        return Accelerator(**kwargs)
    except ValueError as e:  # e.g. bf16 requested where the hardware has none
        raise UserError(f"cannot set up the accelerator: {e}",
                        "check runtime.mixed_precision and the `accelerate launch` config") from None


_TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                     "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                     "trackio": "trackio"}


def _check_trackers(names: list[str]) -> None:
    import importlib.util

    for name in names:
        if name not in _TRACKER_PACKAGES:
            raise UserError(f"runtime.trackers: unknown tracker {name!r}",
                            f"use one of: {', '.join(_TRACKER_PACKAGES)}")
        module = "torch.utils.tensorboard" if name == "tensorboard" else _TRACKER_PACKAGES[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found or (name == "tensorboard" and importlib.util.find_spec("tensorboard") is None):
            raise UserError(f"runtime.trackers: {name} is not installed", f"pip install {_TRACKER_PACKAGES[name]}")


def start_trackers(accelerator, recipe) -> None:
    """`init_trackers` with the recipe's scalar settings as hyper-parameters (no-op without trackers)."""
    if not recipe.runtime.trackers:
        return
    from pipeline.config import to_dict

    flat = {}

    def walk(prefix, node):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + ".", v)
            elif isinstance(v, (bool, int, float, str)):
                flat[key] = v
    walk("", {k: v for k, v in to_dict(recipe).items() if k != "theory"})
    accelerator.init_trackers(recipe.name, config=flat)


class _Stdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (pytest's capture, a redirected CLI)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def run_logger():
    """Run messages: the stdlib `w2s` logger, plain lines to stdout, main process only (the Runner gates
    on the process). accelerate's `get_logger` would prefix every line with "[RANK 0]"."""
    base = logging.getLogger("w2s")
    if not any(isinstance(h, _Stdout) for h in base.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        base.addHandler(handler)
        base.setLevel(logging.INFO)
        base.propagate = False
    return lambda msg, *a, **k: base.info(msg)
