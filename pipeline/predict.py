"""Batched inference: class probabilities of a classifier, pooled features of a backbone.

Work is sharded over processes in contiguous shards (`shard_rows`), padded to one length, gathered and
unpadded back into the input order; within a shard examples are sorted by length so batches carry little
padding. Every process gets every row back.
"""

import os

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.distributed import compute_precision, sharded


def show_progress(accelerator) -> bool:
    """Progress bars on the local main process unless W2S_NO_PROGRESS is set (`--no-progress`)."""
    return accelerator.is_local_main_process and not os.environ.get("W2S_NO_PROGRESS")


def is_pairs(texts) -> bool:
    """A preference task's inputs: (prompt + response A, prompt + response B) pairs, not texts."""
    return len(texts) > 0 and not isinstance(texts[0], str)


def encode(tokenizer, texts: list, max_length: int) -> list:
    """Token ids per text; for pairs an (A, B) tuple of encodings, each cut from the left so that the
    responses, at the end, survive truncation of a long prompt."""
    if is_pairs(texts):
        side, tokenizer.truncation_side = tokenizer.truncation_side, "left"
        try:
            flat = encode(tokenizer, [t for pair in texts for t in pair], max_length)
        finally:
            tokenizer.truncation_side = side
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(texts))]
    key = _tokenizer_id(tokenizer)
    known = _ENCODED.setdefault((key, max_length), {}) if key else {}
    if len(known) > 500_000:  # a bound for very long runs; a split is a few thousand texts
        known.clear()
    todo = list(dict.fromkeys(t for t in texts if t not in known))
    if todo:
        enc = tokenizer(todo, truncation=True, max_length=max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        known.update((t, {k: enc[k][i] for k in keys}) for i, t in enumerate(todo))
    return [known[t] for t in texts]


# encodings by (tokenizer, max_length) and text: a split is tokenised once per tokenizer in a process, though
# every seed's weak model, every prediction and every fold model reads it (the dicts are never modified)
_ENCODED: dict = {}


def _tokenizer_id(tokenizer) -> tuple | None:
    """Same for two loads of one tokenizer folder; None (not cached) for a tokenizer built in memory. A
    probe encoding catches settings that change the ids (special tokens added, vocabulary)."""
    if not tokenizer.name_or_path:
        return None
    probe = tuple(tokenizer("Weak to strong: 12 probes.", truncation=False)["input_ids"])
    return (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), tokenizer.truncation_side, probe)


def count_truncated(tokenizer, texts: list, max_length: int) -> int:
    """How many inputs (texts, or pairs with either side) are longer than max_length tokens, i.e. what
    `encode` cuts."""
    flat = [t for pair in texts for t in pair] if is_pairs(texts) else list(texts)
    if not flat:
        return 0
    over = [len(ids) > max_length for ids in tokenizer(flat, truncation=False, verbose=False)["input_ids"]]
    return sum(a or b for a, b in zip(over[::2], over[1::2])) if is_pairs(texts) else sum(over)


def length(item) -> int:
    return max(len(x["input_ids"]) for x in item) if isinstance(item, tuple) else len(item["input_ids"])


def flatten(items: list) -> list[dict]:
    """A batch of encodings to pad: pairs become all A rows, then all B rows."""
    if items and isinstance(items[0], tuple):
        return [a for a, _ in items] + [b for _, b in items]
    return items


def pair_logits(rewards):
    """Scalar rewards [2k, 1] of A rows then B rows -> 2-class logits [k, 2] = (r_B, r_A): softmax gives
    P(A preferred) = sigmoid(r_A - r_B), so every loss on class logits is Bradley-Terry on pairs."""
    k = rewards.shape[0] // 2
    return torch.cat([rewards[k:], rewards[:k]], dim=-1)


def shard_rows(n: int, num_processes: int, rank: int) -> tuple[range, int]:
    """This rank's contiguous share of rows 0..n-1 and the common padded shard length.

    Shard sizes differ by at most one (accelerate's `split_between_processes` split, which it also uses
    for lists). Every rank computes exactly `padded` rows, padding with repeats of a row it already has
    (or row 0 when its shard is empty), so all ranks run the same number of forward passes (FSDP and
    DeepSpeed need that: each forward is a collective) and `gather` sees equal shapes.
    """
    base, extra = divmod(n, num_processes)
    start = rank * base + min(rank, extra)
    size = base + (rank < extra)
    return range(start, start + size), base + (extra > 0)


def unpad_gathered(gathered, n: int, num_processes: int):
    """Rows 0..n-1 from the rank-ordered concatenation of padded shards (see `shard_rows`).

    accelerate's `split_between_processes(apply_padding=True)` pads the end of *each* short shard, so
    `gathered[:n]` is only right when n % num_processes is 0 or num_processes - 1: each shard's padding
    must be cut out where it sits.
    """
    padded = shard_rows(n, num_processes, 0)[1]
    keep = [r * padded + j for r in range(num_processes) for j in range(len(shard_rows(n, num_processes, r)[0]))]
    return gathered[keep]


def _map_batches(fn, model, tokenizer, texts, max_length, batch_size, accelerator, desc,
                 grad_mode=None) -> np.ndarray:
    """Apply `fn(batch, pairs) -> Tensor[b, ...]` (forward passes of `model`) to every text or text pair (a
pair's batch holds its A rows, then its B rows; `fn` combines them); rows in the input order.

    `grad_mode`: the context the forward passes run in, `torch.inference_mode` by default; evaluation
    *during* training (early stopping) passes `torch.no_grad` (inference tensors break FSDP's and ZeRO-3's
    parameter handling when training resumes).
    """
    n = len(texts)
    if n == 0:
        raise ValueError("_map_batches: no texts")
    rows, padded = shard_rows(n, accelerator.num_processes, accelerator.process_index)
    shard = list(rows) + [rows[-1] if len(rows) else 0] * (padded - len(rows))
    pairs = is_pairs(texts)
    items = encode(tokenizer, [texts[i] for i in shard], max_length)
    order = sorted(range(len(items)), key=lambda i: -length(items[i]))
    outputs = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, unit="ex", leave=False, disable=not show_progress(accelerator))
    precision = compute_precision(accelerator, model)
    with (grad_mode or torch.inference_mode)():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad(flatten([items[i] for i in idx]), return_tensors="pt")
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with precision():
                out = fn(batch, pairs).float().cpu()
            for j, i in enumerate(idx):
                outputs[i] = out[j]
            bar.update(len(idx))
    bar.close()
    local = torch.stack(outputs).to(accelerator.device)
    gathered = accelerator.gather(local).cpu().numpy() if accelerator.num_processes > 1 else local.cpu().numpy()
    return unpad_gathered(gathered, n, accelerator.num_processes)


def predict_proba(model, tokenizer, texts, max_length, batch_size, accelerator, desc="predict",
                  during_training: bool = False) -> np.ndarray:
    """P(class) for each text, shape [n, 2]. `during_training`: an evaluation inside the training loop
    (early stopping), run under `torch.no_grad` instead of `torch.inference_mode`."""
    model = (model if sharded(accelerator) else accelerator.unwrap_model(model).to(accelerator.device)).eval()

    def fn(batch, pairs):
        logits = model(**batch).logits.float()
        return torch.softmax(pair_logits(logits) if pairs else logits, -1)

    return _map_batches(fn, model, tokenizer, texts, max_length, batch_size, accelerator, desc,
                        torch.no_grad if during_training else None)


def pooled_features(backbone, tokenizer, texts, max_length, pooling, batch_size, accelerator,
                    desc="features") -> np.ndarray:
    """Frozen-backbone features, shape [n, hidden]: masked mean over tokens, or the last real token; for text
    pairs the difference of the two texts' features."""
    backbone = backbone.to(accelerator.device).eval()

    def pool(batch):
        hidden = backbone(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        if pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        last = batch["attention_mask"].sum(1) - 1  # right padding: last real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def fn(batch, pairs):
        f = pool(batch)
        if not pairs:
            return f
        k = f.shape[0] // 2  # a pair's feature: phi(prompt, A) - phi(prompt, B), what a linear reward head sees
        return f[:k] - f[k:]

    if tokenizer.padding_side != "right":
        tokenizer.padding_side = "right"
    return _map_batches(fn, backbone, tokenizer, texts, max_length, batch_size, accelerator, desc)
