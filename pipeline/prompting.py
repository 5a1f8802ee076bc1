"""Few-shot prompting of a causal model: prompts with weak-labelled demonstrations, verbalizer scoring.

The score of a prompt is the next-token log-odds of the two label verbalizers, log p(v1) - log p(v0),
read from one forward pass (left padding, so the last position is the prediction for every row); no
sampling. Calibration shifts the log-odds so a chosen share (the weak labels' positive rate) is positive:
demonstration blocks move a small model's label prior a lot (measured on the quickstart: README, refine).
"""

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.errors import UserError
from pipeline.predict import show_progress


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


@torch.inference_mode()
def verbalizer_log_odds(model, tokenizer, prompts: list[str], ids: list[int], batch_size: int, accelerator,
                        max_length: int = 2048, desc: str = "prompting") -> np.ndarray:
    """log p(v1) - log p(v0) at the next token of each prompt (left-truncated to max_length tokens), each
    prompt run whole: for prompts that share no prefix, and the reference `Prompter.block_log_odds` is
    tested against."""
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
            logits = model(**batch, logits_to_keep=1).logits[:, -1].float()  # left padding: the last position
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


def as_chat(tokenizer, prompt: str) -> str:
    """The prompt as one user turn of the tokenizer's chat template, ready for the assistant's answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("chat_template: true, but this tokenizer has no chat template",
                        "set chat_template: false for this model")
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def _demo_block(template, verbalizers, texts, labels, idx) -> str:
    return "".join(template.format(text=texts[j]) + verbalizers[int(labels[j])] + "\n\n" for j in idx)


def draw_demos(rng, pool: np.ndarray, labels: np.ndarray, k: int, balance: bool) -> np.ndarray:
    """k demonstration indices from `pool`; with `balance`, as even a label split as the pool allows."""
    if k <= 0 or len(pool) == 0:
        return np.array([], dtype=int)
    k = min(k, len(pool))
    if not balance:
        return rng.choice(pool, size=k, replace=False)
    by_class = [rng.permutation(pool[labels[pool] == c]) for c in (0, 1)]
    take1 = min(len(by_class[1]), max(k - len(by_class[0]), (k + int(rng.integers(2))) // 2))
    chosen = np.concatenate([by_class[0][:k - take1], by_class[1][:take1]])
    return rng.permutation(chosen)


def plan_blocks(n: int, query_pool_idx: np.ndarray | None, pool_labels: np.ndarray, k: int, block_size: int,
                balance: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(query chunk, demonstration indices) per block; a block never shows one of its own queries."""
    rng = np.random.default_rng(seed)
    all_pool = np.arange(len(pool_labels))
    plan = []
    for start in range(0, n, block_size):
        chunk = np.arange(start, min(start + block_size, n))
        pool = all_pool if query_pool_idx is None else np.setdiff1d(all_pool, query_pool_idx[chunk])
        plan.append((chunk, draw_demos(rng, pool, pool_labels, k, balance)))
    return plan


def length_batches(lengths: list[int], batch_size: int, min_fill: float = 0.8) -> list[list[int]]:
    """Row indices in batches of at most `batch_size`, longest first, a batch closed early when padding to
    its longest row would leave less than `min_fill` of its tokens real: one long review does not make
    fifteen short ones pay for its length."""
    order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
    batches, rows, real = [], [], 0
    for r in order:
        if rows and (len(rows) == batch_size or (real + lengths[r]) < min_fill * lengths[rows[0]] * (len(rows) + 1)):
            batches.append(rows)
            rows, real = [], 0
        rows.append(r)
        real += lengths[r]
    return batches + ([rows] if rows else [])


@dataclass
class DemoPool:
    """Weak-labelled examples demonstrations are drawn from: texts, 0/1 labels, and whether a block's
    demonstrations are label-balanced."""

    texts: list[str]
    labels: np.ndarray
    balance: bool = True


@dataclass
class Prompter:
    """A causal model ready to score prompts: the model, its tokenizer, the template with `{text}`, the two
    verbalizers (label 0, label 1; one token each) and how to batch them."""

    model: object
    tokenizer: object
    template: str
    verbalizers: list[str]
    accelerator: object
    batch_size: int = 16
    max_tokens: int = 2048
    chat: bool = False
    ids: list[int] = field(init=False)

    def __post_init__(self):
        self.ids = verbalizer_ids(self.tokenizer, self.verbalizers)

    @torch.inference_mode()
    def block_log_odds(self, queries: list[str], pool: DemoPool, k: int, block_size: int, seed: int,
                       query_pool_idx: np.ndarray | None = None,
                       desc: str = "prompting") -> tuple[np.ndarray, np.ndarray, dict]:
        """Verbalizer log-odds of every query, queries grouped in chunks of `block_size` that share one block
        of k demonstrations from `pool`; the block is encoded once and its KV cache reused for the chunk.

        With `chat`, each prompt is the user turn of the tokenizer's chat template and the verbalizer is
        scored as the assistant's first token.
        `query_pool_idx[i]` is query i's index in the pool (None: queries are not in the pool); no chunk's
        block contains any of its own queries. A block too long for `max_tokens` with the chunk's longest
        query loses demonstrations until it fits (counted in the returned stats).
        Returns log-odds [n], block id per query [n], stats.
        """
        model, tokenizer, template, verbalizers = self.model, self.tokenizer, self.template, self.verbalizers
        ids, accelerator, batch_size, max_tokens, chat = (self.ids, self.accelerator, self.batch_size,
                                                          self.max_tokens, self.chat)
        pool_texts, pool_labels, balance = pool.texts, pool.labels, pool.balance
        model = model.to(accelerator.device).eval()
        n = len(queries)
        out = np.zeros(n, dtype=np.float32)
        block_of = np.zeros(n, dtype=np.int64)
        stats = {"blocks": 0, "demos_dropped_for_context": 0, "prefix_tokens": 0, "query_tokens": 0}
        side = tokenizer.padding_side
        tokenizer.padding_side = "right"
        bar = tqdm(total=n, desc=desc, unit="prompt", leave=False, disable=not show_progress(accelerator))
        try:
            plan = plan_blocks(n, query_pool_idx, pool_labels, k, block_size, balance, seed)
            for b, (chunk, demos) in enumerate(plan):
                texts = [template.format(text=queries[i]) for i in chunk]

                def encode(d):
                    # Tokenise each full prompt jointly (as the uncached path would) and split off the longest
                    # token prefix they all share: the KV cache covers it exactly, the rest is per query.
                    block = _demo_block(template, verbalizers, pool_texts, pool_labels, d)
                    full = tokenizer([as_chat(tokenizer, block + t) if chat else block + t for t in texts],
                                     add_special_tokens=not chat)["input_ids"]
                    common = min(len(f) for f in full) - 1
                    for f in full[1:]:
                        common = next((j for j in range(common) if f[j] != full[0][j]), common)
                    return full[0][:common], [f[common:] for f in full], max(len(f) for f in full)

                prefix, enc, longest = encode(demos)
                while longest > max_tokens and len(demos):
                    demos = demos[1:]
                    stats["demos_dropped_for_context"] += 1
                    prefix, enc, longest = encode(demos)
                prefix_ids = torch.tensor([prefix]) if prefix else None
                cache = None
                if prefix_ids is not None:  # the block's KV cache; one position's logits (unused) is the least
                    cache = model(prefix_ids.to(accelerator.device), use_cache=True, logits_to_keep=1).past_key_values
                    stats["prefix_tokens"] += prefix_ids.shape[1]
                past, past_rows = None, 0
                for rows in length_batches([len(e) for e in enc], batch_size):
                    batch = tokenizer.pad({"input_ids": [enc[r] for r in rows]}, return_tensors="pt")
                    ids_b = batch["input_ids"].to(accelerator.device)
                    mask = batch["attention_mask"].to(accelerator.device)
                    kwargs = {}
                    if cache is not None:
                        plen = prefix_ids.shape[1]
                        if past is None or past_rows != len(rows):  # one expanded copy per chunk and batch size
                            past, past_rows = copy.deepcopy(cache), len(rows)
                            past.batch_repeat_interleave(len(rows))
                        mask = torch.cat([torch.ones(len(rows), plen, dtype=mask.dtype, device=mask.device), mask], 1)
                        kwargs = {"past_key_values": past,
                                  "cache_position": torch.arange(plen, plen + ids_b.shape[1], device=ids_b.device)}
                    # logits only where a row's query ends (right padding: its last real token), not over the
                    # whole vocabulary at every position
                    last = batch["attention_mask"].sum(1) - 1
                    keep, where = torch.unique(last, return_inverse=True)
                    logits = model(input_ids=ids_b, attention_mask=mask, logits_to_keep=keep.to(ids_b.device),
                                   **kwargs).logits
                    if past is not None:
                        past.crop(-ids_b.shape[1])  # drop this batch's query tokens, keep the block
                    logits = logits[torch.arange(len(rows)), where.to(logits.device)].float()
                    logp = torch.log_softmax(logits, -1)
                    out[chunk[rows]] = (logp[:, ids[1]] - logp[:, ids[0]]).cpu().numpy()
                    stats["query_tokens"] += int(batch["attention_mask"].sum())
                    bar.update(len(rows))
                block_of[chunk] = b
                stats["blocks"] += 1
        finally:
            tokenizer.padding_side = side
            bar.close()
        return out, block_of, stats




def calibrate(log_odds: np.ndarray, mode: str, positive_rate: float, blocks: np.ndarray | None = None,
              block_rates: dict | None = None) -> np.ndarray:
    """none: sigmoid of the log-odds; prior: one shift to the weak positive rate; per_block: a shift per
    demonstration block to the weak positive rate of that block's queries (no gold either way)."""
    if mode == "none":
        p1 = 1 / (1 + np.exp(-log_odds))
        return np.stack([1 - p1, p1], axis=1).astype(np.float32)
    if mode == "prior" or blocks is None:
        return calibrated_proba(log_odds, positive_rate)
    out = np.zeros((len(log_odds), 2), dtype=np.float32)
    for b in np.unique(blocks):
        m = blocks == b
        out[m] = calibrated_proba(log_odds[m], block_rates.get(int(b), positive_rate) if block_rates else positive_rate)
    return out
