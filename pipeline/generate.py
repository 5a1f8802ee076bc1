"""Batched greedy decoding for generative tasks: `transformers`' `generate` with the KV cache, left
padding, `max_new_tokens` and stop strings; prompts sharded over processes, answers back in input order
on every process.

Prompts are sorted by length within a shard so that a batch carries little padding. Greedy decoding of
a left-padded batch gives the tokens one prompt alone would (attention masks and position ids exclude
the padding; tested on a tiny Llama), up to float rounding in ties.
"""

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.predict import shard_rows, show_progress


def cut_at_stop(text: str, stop: list[str]) -> str:
    """`text` up to the first occurrence of any stop string (the stop string itself removed)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def _stop_criteria(tokenizer, stop: list[str], prompt_len: int):
    """Stop a row once its decoded continuation holds a stop string. transformers' own `stop_strings`
    needs a tokenizer whose tokens map to strings piecewise (byte-level BPE); decoding the continuation
    works for any tokenizer, and answers are short."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in texts], device=input_ids.device)

    return StoppingCriteriaList([StopOnStrings()])


def generate(model, tokenizer, prompts: list[str], accelerator, max_new_tokens: int = 32, batch_size: int = 16,
             stop: list[str] | None = None, max_length: int | None = None, desc: str = "generate",
             add_special_tokens: bool = True, eos_ids: list[int] | None = None) -> list[str]:
    """Greedy answers (the continuation only, cut at the first stop string) to every prompt, in order.
    `add_special_tokens=False` for prompts a chat template rendered (they carry their own BOS); `eos_ids`
    (default: the tokenizer's EOS) end an answer (a chat model: `sft.end_of_turn_ids`)."""
    from accelerate.utils import gather_object

    stop = list(stop or [])
    n = len(prompts)
    rows, _ = shard_rows(n, accelerator.num_processes, accelerator.process_index)
    model = accelerator.unwrap_model(model).to(accelerator.device).eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer([prompts[i] for i in rows], add_special_tokens=add_special_tokens,
                    truncation=max_length is not None, max_length=max_length)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    out: list[str | None] = [None] * len(enc)
    bar = tqdm(total=len(enc), desc=desc, unit="ex", leave=False, disable=not show_progress(accelerator))
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt").to(accelerator.device)
                generated = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids or tokenizer.eos_token_id,
                    stopping_criteria=_stop_criteria(tokenizer, stop, batch["input_ids"].shape[1]) if stop else None,
                    temperature=None, top_p=None, top_k=None)
                new = generated[:, batch["input_ids"].shape[1]:]
                for j, i in enumerate(idx):
                    out[i] = cut_at_stop(tokenizer.decode(new[j], skip_special_tokens=True), stop)
                bar.update(len(idx))
    finally:
        tokenizer.padding_side = side
        bar.close()
    if accelerator.num_processes == 1:
        return out
    gathered = gather_object(list(zip(rows, out)))  # (row, answer) of every rank's shard
    answers = dict(gathered)
    return [answers[i] for i in range(n)]


def tokens_generated(tokenizer, answers: list[str]) -> int:
    """Tokens in a list of answers (for throughput figures)."""
    return int(np.sum([len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]))
