"""Batched inference: class probabilities of a classifier, pooled features of a backbone.

Work is sharded over processes with `split_between_processes` and gathered back in order; within a
shard examples are sorted by length so batches carry little padding.
"""

import os

import numpy as np
import torch
from tqdm.auto import tqdm


def show_progress(accelerator) -> bool:
    """Progress bars on the local main process unless W2S_NO_PROGRESS is set (`--no-progress`)."""
    return accelerator.is_local_main_process and not os.environ.get("W2S_NO_PROGRESS")


def _encode(tokenizer, texts: list[str], max_length: int) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(texts))]


@torch.inference_mode()
def _map_batches(fn, tokenizer, texts, max_length, batch_size, accelerator, desc) -> np.ndarray:
    """Apply `fn(batch) -> Tensor[b, ...]` to every text; returns rows in the input order."""
    n = len(texts)
    with accelerator.split_between_processes(list(range(n)), apply_padding=True) as shard:
        items = _encode(tokenizer, [texts[i] for i in shard], max_length)
        order = sorted(range(len(items)), key=lambda i: -len(items[i]["input_ids"]))
        outputs = [None] * len(items)
        bar = tqdm(total=len(items), desc=desc, unit="ex", leave=False,
                   disable=not show_progress(accelerator))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad([items[i] for i in idx], return_tensors="pt")
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():  # the recipe's / launch config's mixed precision, if any
                out = fn(batch).float().cpu()
            for j, i in enumerate(idx):
                outputs[i] = out[j]
            bar.update(len(idx))
        bar.close()
        local = torch.stack(outputs).to(accelerator.device)
    gathered = accelerator.gather(local).cpu().numpy()
    return gathered[:n]  # shards are contiguous, padding sits at the end


def predict_proba(model, tokenizer, texts, max_length, batch_size, accelerator, desc="predict") -> np.ndarray:
    """P(class) for each text, shape [n, 2]."""
    from pipeline.train import sharded

    model = (model if sharded(accelerator) else accelerator.unwrap_model(model).to(accelerator.device)).eval()
    return _map_batches(lambda b: torch.softmax(model(**b).logits.float(), -1), tokenizer, texts, max_length,
                        batch_size, accelerator, desc)


def pooled_features(backbone, tokenizer, texts, max_length, pooling, batch_size, accelerator,
                    desc="features") -> np.ndarray:
    """Frozen-backbone features, shape [n, hidden]: masked mean over tokens, or the last real token."""
    backbone = backbone.to(accelerator.device).eval()

    def fn(batch):
        hidden = backbone(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        if pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        last = batch["attention_mask"].sum(1) - 1  # right padding: last real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    if tokenizer.padding_side != "right":
        tokenizer.padding_side = "right"
    return _map_batches(fn, tokenizer, texts, max_length, batch_size, accelerator, desc)
