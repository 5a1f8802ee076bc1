"""Few-shot prompting of a causal model: prompts with weak-labelled demonstrations, verbalizer scoring.

The score of a prompt is the next-token log-odds of the two label verbalizers, log p(v1) - log p(v0),
read from one forward pass (left padding, so the last position is the prediction for every row); no
sampling. Calibration shifts the log-odds so a chosen share (the weak labels' positive rate) is positive:
demonstration blocks move a small model's label prior a lot (measured on the quickstart: README, refine).
"""

import copy
import inspect
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


# Architectures whose queries are scored packed (each tested against the padded form in tests/test_prompting.py):
# they take position ids and a 4-D attention mask as given. Sliding-window layers keep a cut KV cache, so a model
# with any is scored padded.
PACKED_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def packable(model) -> bool:
    if getattr(model, "config", None) is None:  # a wrapper that hides the model's config: score padded
        return False
    config = model.config.get_text_config()
    layer_types = getattr(config, "layer_types", None)
    full = (set(layer_types) == {"full_attention"} if layer_types
            else getattr(config, "sliding_window", None) is None)
    return config.model_type in PACKED_TYPES and config._attn_implementation in ("sdpa", "eager") and full


def _cache_arg(model) -> str:
    """The forward argument a KV cache is passed as: `cache` (transformers >= 5.25), else `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output):
    return output.cache if "cache" in output else output.past_key_values


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
    pack_tokens: int = 384
    packed: bool | None = None  # queries packed into one row behind the block (None: where the model allows)
    ids: list[int] = field(init=False)
    _expanded: tuple = field(init=False, default=(None, 0, None), repr=False)
    _cache_kw: str = field(init=False, repr=False)

    def __post_init__(self):
        self.ids = verbalizer_ids(self.tokenizer, self.verbalizers)
        self._cache_kw = _cache_arg(self.model)
        if self.packed is None:
            self.packed = packable(self.model)

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
        plan = plan_blocks(n, query_pool_idx, pool_labels, k, block_size, balance, seed)
        for b, (chunk, _) in enumerate(plan):
            block_of[chunk] = b
        # blocks are independent: each process scores every P-th one, and the scores are gathered
        mine = range(accelerator.process_index, len(plan), accelerator.num_processes)
        bar = tqdm(total=sum(len(plan[b][0]) for b in mine), desc=desc, unit="prompt", leave=False,
                   disable=not show_progress(accelerator))
        group, score = (self._packs, self._packed_logits) if self.packed else (length_batches, self._padded_logits)
        try:
            for b in mine:
                chunk, demos = plan[b]
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
                plen, cache = len(prefix), None
                if plen:  # the block's KV cache; one position's logits (unused) is the least
                    cache = _cache_of(model(torch.tensor([prefix], device=accelerator.device), use_cache=True,
                                            logits_to_keep=1))
                    stats["prefix_tokens"] += plen
                for rows in group([len(e) for e in enc], batch_size):
                    logits = score([enc[r] for r in rows], cache, plen).float()
                    logp = torch.log_softmax(logits, -1)
                    out[chunk[rows]] = (logp[:, ids[1]] - logp[:, ids[0]]).cpu().numpy()
                    stats["query_tokens"] += sum(len(enc[r]) for r in rows)
                    bar.update(len(rows))
                stats["blocks"] += 1
        finally:
            tokenizer.padding_side = side
            self._expanded = (None, 0, None)
            bar.close()
        if accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            rows = np.concatenate([plan[b][0] for b in mine]) if len(mine) else np.zeros(0, dtype=np.int64)
            gathered = gather_object([(rows.tolist(), out[rows].tolist(), stats)])  # every rank's, own included
            stats = {key: sum(got[2][key] for got in gathered) for key in stats}
            for got_rows, got, _ in gathered:
                out[np.asarray(got_rows, dtype=np.int64)] = np.asarray(got, dtype=np.float32)  # float32 both ways
        return out, block_of, stats

    def _packs(self, lengths: list[int], batch_size: int) -> list[list[int]]:
        """Packed queries carry no padding: longest first, at most `batch_size` queries and `pack_tokens`
        tokens a pack (a pack's attention is dense over all its tokens, so long packs waste it quadratically)."""
        packs, rows, used = [], [], 0
        for r in sorted(range(len(lengths)), key=lambda r: -lengths[r]):
            if rows and (len(rows) == batch_size or used + lengths[r] > self.pack_tokens):
                packs.append(rows)
                rows, used = [], 0
            rows.append(r)
            used += lengths[r]
        return packs + ([rows] if rows else [])

    def _packed_logits(self, queries: list[list[int]], cache, plen: int) -> torch.Tensor:
        """Next-token logits after each query, the queries packed into one row behind the block's prefix:
        each query's tokens sit at positions plen.. (as if it alone followed the block) and attend to the
        prefix and to their own earlier tokens only, so the prefix's KV cache is neither copied per query
        nor repeated per batch row, and no position is padding."""
        device = self.accelerator.device
        lens = torch.tensor([len(q) for q in queries])
        total = int(lens.sum())
        ids_b = torch.tensor([[t for q in queries for t in q]], device=device)
        seg = torch.repeat_interleave(torch.arange(len(queries)), lens)
        pos = plen + torch.cat([torch.arange(n) for n in lens.tolist()])
        own = (seg[:, None] == seg[None, :]) & (pos[:, None] >= pos[None, :])
        allowed = torch.cat([torch.ones(total, plen, dtype=torch.bool), own], 1)
        last = (torch.cumsum(lens, 0) - 1).to(device)
        logits = self.model(input_ids=ids_b, attention_mask=self._mask(allowed),
                            position_ids=pos[None].to(device), use_cache=cache is not None, logits_to_keep=last,
                            **({self._cache_kw: cache} if cache is not None else {})).logits[0]
        if cache is not None:
            cache.crop(-total)  # drop the packed queries, keep the block
        return logits

    def _padded_logits(self, queries: list[list[int]], cache, plen: int) -> torch.Tensor:
        """The same logits with the queries as right-padded rows over a copy of the block's cache per row (any
        model; the packed form covers the architectures in PACKED_TYPES)."""
        device = self.accelerator.device
        batch = self.tokenizer.pad({"input_ids": queries}, return_tensors="pt")
        ids_b, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        kwargs = {}
        if cache is not None:
            if self._expanded[0] is not cache or self._expanded[1] != len(queries):  # one copy per block and size
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(queries))
                self._expanded = (cache, len(queries), past)
            past = self._expanded[2]
            mask = torch.cat([torch.ones(len(queries), plen, dtype=mask.dtype, device=device), mask], 1)
            kwargs = {self._cache_kw: past,
                      "cache_position": torch.arange(plen, plen + ids_b.shape[1], device=device)}
        # logits only where a row's query ends (right padding: its last real token)
        last = batch["attention_mask"].sum(1) - 1
        keep, where = torch.unique(last, return_inverse=True)
        logits = self.model(input_ids=ids_b, attention_mask=mask, logits_to_keep=keep.to(device), **kwargs).logits
        if cache is not None:
            past.crop(-ids_b.shape[1])  # drop this batch's query tokens, keep the block
        return logits[torch.arange(len(queries)), where.to(logits.device)]

    def _mask(self, allowed: torch.Tensor):
        """A 4-D mask as the model's attention takes it: boolean for sdpa, additive for eager."""
        allowed = allowed[None, None].to(self.accelerator.device)
        if self.model.config._attn_implementation == "sdpa":
            return allowed
        dtype = next(self.model.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)


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
