"""Few-shot prompting of a causal model: prompts with weak-labelled demonstrations, verbalizer scoring.

The score of a prompt is the next-token log-odds of the two label verbalizers, log p(v1) - log p(v0),
read from one forward pass (left padding, so the last position is the prediction for every row); no
sampling. Calibration shifts the log-odds so a chosen share (the weak labels' positive rate) is positive:
demonstration blocks move a small model's label prior a lot (DESIGN.md §8).
"""

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.errors import UserError
from pipeline.predict import show_progress


def prompt_spec(recipe, template: str | None, verbalizers: list[str] | None) -> tuple[str, list[str]]:
    """The template and verbalizers to use: the method's own, else the shipped dataset's."""
    from pipeline.data import DATASETS

    spec = DATASETS.get(recipe.data.name) if recipe.data.name else None
    template = template or (spec.prompt if spec else None)
    verbalizers = verbalizers or (list(spec.verbalizers) if spec else None)
    if template is None or verbalizers is None:
        raise UserError("prompting a causal model needs a template and two verbalizers for this dataset",
                        "set the method's `prompt` (with a {text} placeholder) and `verbalizers` "
                        "(two strings, label 0 then label 1)")
    if "{text}" not in template:
        raise UserError(f"prompt template {template!r} has no {{text}} placeholder",
                        "write e.g. 'Review: {text}\\nSentiment:'")
    if len(verbalizers) != 2:
        raise UserError(f"verbalizers must be two strings (label 0, label 1), got {verbalizers!r}")
    return template, verbalizers


def verbalizer_ids(tokenizer, verbalizers: list[str]) -> list[int]:
    ids = []
    for v in verbalizers:
        tok = tokenizer(v, add_special_tokens=False)["input_ids"]
        if len(tok) != 1:
            raise UserError(f"verbalizer {v!r} is {len(tok)} tokens for this tokenizer, not one",
                            "pick verbalizers that are single tokens (a leading space often helps: ' yes')")
        ids.append(tok[0])
    if ids[0] == ids[1]:
        raise UserError(f"verbalizers {verbalizers!r} map to the same token")
    return ids


def build_prompts(template: str, verbalizers: list[str], texts: list[str], demo_texts: list[str],
                  demo_labels: np.ndarray, k: int, seed: int, exclude_self: bool) -> tuple[list[str], list[list[int]]]:
    """One prompt per text with k demonstrations drawn (seeded) from the demo pool, never the text's own
    index when `exclude_self` (the pool is the same list as `texts`). Returns prompts and demo indices."""
    rng = np.random.default_rng(seed)
    prompts, used = [], []
    pool = np.arange(len(demo_texts))
    for i, text in enumerate(texts):
        candidates = pool[pool != i] if exclude_self else pool
        demos = rng.choice(candidates, size=min(k, len(candidates)), replace=False) if k else []
        block = "".join(template.format(text=demo_texts[j]) + verbalizers[int(demo_labels[j])] + "\n\n"
                        for j in demos)
        prompts.append(block + template.format(text=text))
        used.append([int(j) for j in demos])
    return prompts, used


@torch.inference_mode()
def verbalizer_log_odds(model, tokenizer, prompts: list[str], ids: list[int], batch_size: int, accelerator,
                        max_length: int = 2048, desc: str = "prompting") -> np.ndarray:
    """log p(v1) - log p(v0) at the next token of each prompt (left-truncated to max_length tokens)."""
    model = model.to(accelerator.device).eval()
    side, trunc = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"  # keep the query, drop the oldest demos
    out = np.zeros(len(prompts), dtype=np.float32)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", leave=False, disable=not show_progress(accelerator))
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length).to(accelerator.device)
            logits = model(**batch).logits[:, -1].float()
            logp = torch.log_softmax(logits, -1)
            out[idx] = (logp[:, ids[1]] - logp[:, ids[0]]).cpu().numpy()
            bar.update(len(idx))
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, trunc
        bar.close()
    return out


def calibrated_proba(log_odds: np.ndarray, positive_rate: float) -> np.ndarray:
    """[n, 2] probabilities after shifting the log-odds so a share `positive_rate` lands in class 1."""
    shift = np.quantile(log_odds, 1 - positive_rate)
    p1 = 1 / (1 + np.exp(-(log_odds - shift)))
    return np.stack([1 - p1, p1], axis=1).astype(np.float32)
