"""One rank of the CPU FSDP check (tests/test_distributed.py launches 2 with torch.distributed.run,
checking full and lora in one launch).

accelerate 1.15 refuses FSDP without an accelerator device, so torch's FSDP (v1, gloo) wraps the model
here the way accelerate's `prepare_model` does for recipes/accelerate/fsdp.yaml: FULL_SHARD, one unit per
transformer layer, use_orig_params, `to_empty` for meta modules then rank 0's states broadcast (after
transformers' cpu_ram_efficient_loading left rank 1's new head on the meta device). The pipeline's own
pieces run on top: `models.load_classifier`, `train.prepare_with_optimizer` (optimizer from the prepared
model, decay by name) and `distributed.model_state_to_save` (LoRA: trainable parameters only).
Each rank writes a JSON report to $OUT_DIR/rank<r>_<mode>.json.
"""

import functools
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist


class FSDPAccelerator:
    """The part of `Accelerator` the pipeline's preparation uses, with torch FSDP as `prepare_model`."""

    def __init__(self, layer_cls):
        from accelerate.utils import DistributedType

        self.distributed_type, self.is_fsdp2, self.layer_cls = DistributedType.FSDP, False, layer_cls

    def prepare(self, *objs):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import ShardingStrategy
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        out = []
        for obj in objs:
            if isinstance(obj, torch.nn.Module):
                # FSDP's param_init_fn and sync_module_states, done before wrapping: torch refuses
                # sync_module_states for CPU modules ("requires them to be on GPU")
                for module in obj.modules():
                    if any(t.device.type == "meta" for t in module.parameters(recurse=False)):
                        module.to_empty(device=torch.device("cpu"), recurse=False)
                with torch.no_grad():
                    for t in obj.state_dict().values():
                        dist.broadcast(t, src=0)
                policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={self.layer_cls})
                obj = FSDP(obj, sharding_strategy=ShardingStrategy.FULL_SHARD, auto_wrap_policy=policy,
                           device_id=torch.device("cpu"), use_orig_params=True)
            out.append(obj)
        return out[0] if len(out) == 1 else tuple(out)


def main(model_path: str, modes: str, out_dir: str) -> None:
    """Check each of the comma-separated `modes` (full, lora) in one process group."""
    os.environ.update(ACCELERATE_USE_FSDP="true", FSDP_CPU_RAM_EFFICIENT_LOADING="true")
    dist.init_process_group("gloo")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for mode in modes.split(","):
        check(model_path, mode, out_dir, dist.get_rank())
        dist.barrier()
    dist.destroy_process_group()


def check(model_path: str, mode: str, out_dir: str, rank: int) -> None:
    from transformers.models.bert.modeling_bert import BertLayer

    from pipeline import models
    from pipeline.config.schema import LoraConfig
    from pipeline.distributed import model_state_to_save
    from pipeline.train.loop import prepare_with_optimizer

    torch.manual_seed(0)  # rank 0's head init is what sync_module_states broadcasts
    tok = models.load_tokenizer(model_path)
    model = models.load_classifier(model_path, tok, mode, LoraConfig(r=4, alpha=8, dropout=0.0))
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    batch = tok(["good movie", "bad food", "the room was lovely", "awful staff"], padding=True, return_tensors="pt")
    targets = torch.tensor([1, 0, 1, 0])
    # the one-process reference (rank 0): the same model, unwrapped, same optimiser settings and steps
    reference = None
    if rank == 0:
        import copy

        reference = copy.deepcopy(model)
    cfg = SimpleNamespace(lr=1e-2, weight_decay=0.1)
    acc = FSDPAccelerator(BertLayer)
    wrapped, optimizer, _ = prepare_with_optimizer(acc, model, None, cfg)
    shards_before = {n: p.detach().clone() for n, p in wrapped.named_parameters() if p.requires_grad}
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(wrapped(**batch).logits, targets)  # same batch on both ranks
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n: bool((p.detach() != shards_before[n]).any()) for n, p in wrapped.named_parameters()
               if p.requires_grad and p.numel() > 0}
    empty = [n for n, p in wrapped.named_parameters() if p.requires_grad and p.numel() == 0]
    state = model_state_to_save(acc, wrapped, trainable_only=mode == "lora") if mode == "lora" else None
    report = {"rank": rank, "meta_after_loading": meta, "shard_changed": changed, "empty_shards": empty,
              "optimizer_params_are_module_params": all(
                  any(q is p for q in wrapped.parameters()) for g in optimizer.param_groups for p in g["params"]),
              "decay_group_size": len(optimizer.param_groups[0]["params"]),
              "no_decay_group_size": len(optimizer.param_groups[1]["params"])}
    if rank == 0:
        from pipeline.train.loop import param_groups

        ndims = {n: p.ndim for n, p in reference.named_parameters()}
        ref_opt = torch.optim.AdamW(param_groups(reference.named_parameters(), ndims, cfg.weight_decay), lr=cfg.lr)
        for _ in range(3):
            torch.nn.functional.cross_entropy(reference(**batch).logits, targets).backward()
            ref_opt.step()
            ref_opt.zero_grad()
        trained_ref = {n: p.detach() for n, p in reference.named_parameters() if p.requires_grad}
        if state is not None:
            report["saved_keys"] = sorted(state)
            report["trainable_keys"] = sorted(trained_ref)
            report["saved_max_diff_vs_one_process"] = max(
                float((state[k].float() - trained_ref[k]).abs().max()) for k in trained_ref if k in state)
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(wrapped, writeback=False):
            full = {n.replace("_fsdp_wrapped_module.", ""): p.detach().clone() for n, p in wrapped.named_parameters()}
        report["params_max_diff_vs_one_process"] = max(float((full[k] - v).abs().max()) for k, v in trained_ref.items())
    else:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(wrapped, writeback=False):
            pass
    Path(out_dir, f"rank{rank}_{mode}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
