"""The one place an `Accelerator` is built from a recipe (precision, batch splitting, trackers) and where
run messages are logged. The hardware (processes, GPUs, FSDP, DeepSpeed) comes from
`accelerate launch` and its config file (recipes/accelerate/)."""

import contextlib
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
    import dataclasses

    flat = {}

    def walk(prefix, node):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + ".", v)
            elif isinstance(v, (bool, int, float, str)):
                flat[key] = v
    walk("", {k: v for k, v in dataclasses.asdict(recipe).items() if k != "theory"})
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


def sharded(accelerator) -> bool:
    """True when the model's weights are sharded over processes (FSDP, DeepSpeed): then the prepared
    wrapper, not the unwrapped module, runs forward passes, and saving gathers the state dict first."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def compute_precision(accelerator, model):
    """A factory of the autocast context for forward passes of `model` (call it once per forward).

    The recipe's / launch config's mixed precision when one is set. Without one, a model that mixes
    low-precision frozen weights with float32 trainable ones (`dtype: bfloat16`, whose trainable weights
    are kept in float32, see `upcast_trainable`) computes under autocast to its low precision, so the
    float32 weights meet bf16 activations; a model of one dtype runs as it is.
    """
    import torch

    if accelerator.mixed_precision != "no":
        return accelerator.autocast
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    low = [d for d in (torch.bfloat16, torch.float16) if d in dtypes]
    if low and len(dtypes) > 1:
        return lambda: torch.autocast(accelerator.device.type, dtype=low[0])
    return contextlib.nullcontext


def upcast_trainable(model, accelerator) -> list[str]:
    """Float32 master copies of the trainable weights of a model stored in bf16/fp16 (returns their names).

    AdamW steps of ~lr * 1 on weights of size ~0.02 fall below bf16's resolution (8 bits of mantissa):
    most would be rounded away. peft upcasts LoRA A/B (autocast_adapter_dtype) but not `modules_to_save`
    such as the score head, and full fine-tuning upcasts nothing. Frozen weights keep their storage dtype.
    Skipped under FSDP / DeepSpeed, whose `prepare` keeps the fp32 master copy itself when mixed precision
    is on (accelerate upcasts FSDP's trainable flat parameters; ZeRO keeps fp32 partitions).
    """
    import torch

    if sharded(accelerator):
        return []
    names = []
    for name, p in model.named_parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
            names.append(name)
    return names


def model_state_to_save(accelerator, model, trainable_only: bool) -> dict:
    """The state dict a stage saves, complete on the main process (collective: every process calls it).

    `trainable_only` (LoRA: adapters and head) gathers only the trainable parameters. Under FSDP,
    `accelerator.get_state_dict` would gather the whole model on rank 0 (about 145 GB of host RAM for a
    72B model in bf16) to keep a few hundred MB of adapters: here the frozen parameters are dropped from
    the *sharded* state dict first and only the rest is gathered.
    """
    from accelerate.utils import DistributedType

    if not trainable_only or accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.get_state_dict(model)
    if not sharded(accelerator):
        return {n: p.detach().cpu() for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
    from torch.distributed._state_dict_utils import _gather_state_dict
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    local = get_model_state_dict(model, options=StateDictOptions(full_state_dict=False, ignore_frozen_params=True))
    return _gather_state_dict(local, cpu_offload=True, ranks_only=(0,))
