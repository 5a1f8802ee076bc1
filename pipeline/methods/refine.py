"""refine: in-context refinement (Somerstep et al., ICLR 2025). A causal refiner, shown weak-labelled
demonstrations from B in its prompt, relabels B; the strong model is fine-tuned on the refined labels.

The refiner is the strong model when it is causal (Somerstep's setting) or `refiner` (e.g. a causal model
beside an encoder student on CPU; the report names it). Queries share one demonstration block per chunk
of `block_size` (its KV cache is computed once); a block never holds its own queries. The refined soft label
is the calibrated softmax over the two verbalizers' next-token logits; `per_block` calibration thresholds
each block at the weak labels' positive rate among its queries, since a block moves a small model's label
prior a lot (DESIGN.md §8). B's gold is used only for the refinement curve and diagnostics.
"""

import time
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from pipeline.config import MethodConfig


@dataclass
class Config(MethodConfig):
    name: str = "refine"
    refiner: Optional[str] = field(default=None, metadata={
        "help": "causal model that refines the labels (alias/path/hub id); default: the strong model"})
    shots: int = field(default=8, metadata={"help": "weak-labelled demonstrations per block"})
    block_size: int = field(default=100, metadata={"help": "queries sharing one demonstration block (KV cache)"})
    balance_demos: bool = field(default=True, metadata={"help": "even label split among demonstrations"})
    calibration: Literal["per_block", "prior", "none"] = field(default="per_block", metadata={
        "help": "per_block / prior: shift log-odds to the weak labels' positive rate (per block / overall); "
                "none: raw verbalizer softmax"})
    prompt: Optional[str] = field(default=None, metadata={"help": "template with {text}; default: the dataset's"})
    verbalizers: Optional[list[str]] = field(default=None, metadata={
        "help": "continuations for label 0 and 1, one token each; default: the dataset's"})
    hard: bool = field(default=False, metadata={"help": "train on the argmax of the refined labels"})
    curve_shots: list[int] = field(default_factory=lambda: [0, 1, 2, 4, 8, 16], metadata={
        "help": "demonstration counts of the refinement curve (reporting only; [] skips it)"})
    curve_n: int = field(default=100, metadata={"help": "B examples scored per curve point"})
    prompt_only_n: int = field(default=300, metadata={
        "help": "test examples for the prompt-only baseline (refiner + `shots` weak demos, no training; 0 skips)"})
    batch_size: int = field(default=16, metadata={"help": "queries per forward pass"})
    max_tokens: int = field(default=2048, metadata={"help": "context budget; longer blocks lose demonstrations"})
    chat_template: bool = field(default=False, metadata={
        "help": "wrap each prompt in the tokenizer's chat template (off by default: on SmolLM2-135M the chat "
                "format collapsed to one label once demonstrations were added)"})

    def validate(self) -> list[str]:
        errors = []
        for key in ("shots", "curve_n", "prompt_only_n"):
            if getattr(self, key) < 0:
                errors.append(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("block_size", "batch_size", "max_tokens"):
            if getattr(self, key) < 1:
                errors.append(f"{key}: must be at least 1, got {getattr(self, key)}")
        if any(k < 0 for k in self.curve_shots):
            errors.append(f"curve_shots: demonstration counts must be >= 0, got {self.curve_shots}")
        return errors


def refiner_of(cfg: Config, recipe) -> str:
    return cfg.refiner or recipe.strong.model


def preflight(cfg: Config, recipe) -> str | None:
    from pipeline import models
    from pipeline.errors import UserError
    from pipeline.prompting import prompt_spec

    model = refiner_of(cfg, recipe)
    if cfg.refiner is not None and (problem := models.check_spec(cfg.refiner)):
        return f"refiner: {problem}"
    if models.kind(model) == "encoder":
        return (f"refine needs a causal refiner, and the strong model {model!r} is an encoder: set the method's "
                "`refiner` to a causal model (e.g. refiner: smollm2-135m)")
    try:
        prompt_spec(recipe, cfg.prompt, cfg.verbalizers)
    except UserError as e:
        return str(e)
    return None


def build_labels(cfg: Config, ctx):
    from pipeline import models
    from pipeline.methods import LabelSet
    from pipeline.prompting import calibrate, prompt_spec, shared_block_log_odds, verbalizer_ids

    template, verbalizers = prompt_spec(ctx.recipe, cfg.prompt, cfg.verbalizers)
    refiner = refiner_of(cfg, ctx.recipe)
    path = models.resolve(refiner)
    if not models.is_causal(path):
        from pipeline.errors import UserError

        raise UserError(f"refine: {refiner!r} is not a causal language model", "set the method's `refiner`")
    tokenizer = models.load_tokenizer(path)
    ids = verbalizer_ids(tokenizer, verbalizers)
    model = models.load_causal_lm(path, ctx.recipe.strong if refiner == ctx.recipe.strong.model else None)
    texts_b = ctx.texts("transfer")
    weak = ctx.weak_soft_labels()
    weak_hard = weak.argmax(1)
    rate = float(weak_hard.mean())
    gold_b = ctx.labels("transfer")  # diagnostics only

    def score(queries, pool_idx, k, seed, desc):
        return shared_block_log_odds(model, tokenizer, template, verbalizers, ids, queries, pool_idx, texts_b,
                                     weak_hard, k, cfg.block_size, cfg.balance_demos, seed, cfg.batch_size,
                                     ctx.accelerator, cfg.max_tokens, desc, cfg.chat_template)

    def refined(odds, blocks, own_weak):
        rates = {int(b): float(own_weak[blocks == b].mean()) for b in np.unique(blocks)}
        return calibrate(odds, cfg.calibration, float(own_weak.mean()), blocks, rates)

    start = time.perf_counter()
    odds, blocks, stats = score(texts_b, np.arange(len(texts_b)), cfg.shots, ctx.seed, "refine: B")
    seconds = time.perf_counter() - start
    probs = refined(odds, blocks, weak_hard)
    targets = np.eye(2, dtype=np.float32)[probs.argmax(1)] if cfg.hard else probs

    curve = []
    sub = np.random.default_rng(ctx.seed + 3).permutation(len(texts_b))[:min(cfg.curve_n, len(texts_b))]
    weak_sub = float((weak_hard[sub] == gold_b[sub]).mean())
    for k in cfg.curve_shots:
        o, bl, _ = score([texts_b[i] for i in sub], sub, k, ctx.seed + 100 + k, f"refine: curve k={k}")
        row = {"shots": k, "n": int(len(sub)), "weak_accuracy_same_examples": weak_sub}
        for mode in ("none", "prior", "per_block"):
            p = refined(o, bl, weak_hard[sub]) if mode == "per_block" else calibrate(o, mode, rate)
            row[f"accuracy_{mode}"] = float((p.argmax(1) == gold_b[sub]).mean())
        curve.append(row)

    prompt_only = None
    if cfg.prompt_only_n:
        test_texts, test_gold = ctx.texts("test"), ctx.labels("test")
        sel = np.random.default_rng(ctx.seed + 4).permutation(len(test_texts))[:cfg.prompt_only_n]
        o, bl, _ = score([test_texts[i] for i in sel], None, cfg.shots, ctx.seed + 5, "refine: prompt-only test")
        weak_test = ctx.weak_test_probs()[sel].argmax(1)  # the weak model's labels of these test items: no gold
        prompt_only = {"n": int(len(sel)), "shots": cfg.shots}
        for mode in ("none", "prior", "per_block"):
            p = refined(o, bl, weak_test) if mode == "per_block" else calibrate(o, mode, float(weak_test.mean()))
            prompt_only[f"accuracy_{mode}"] = float((p.argmax(1) == test_gold[sel]).mean())
    acc = lambda p: float((p.argmax(1) == gold_b).mean())  # noqa: E731
    return LabelSet(targets=targets.astype(np.float32), diagnostics={
        "refiner": refiner, "refiner_is_student": cfg.refiner is None or cfg.refiner == ctx.recipe.strong.model,
        "shots": cfg.shots, "calibration": cfg.calibration, "block_size": cfg.block_size,
        "chat_template": cfg.chat_template,
        "weak_label_accuracy": acc(weak), "refined_label_accuracy": acc(probs),
        "refined_label_accuracy_uncalibrated": acc(calibrate(odds, "none", rate)),
        "refined_positive_share": float(probs.argmax(1).mean()), "weak_positive_share": rate,
        "scoring_examples_per_s": len(texts_b) / seconds,
        "scoring_tokens_per_s": (stats["prefix_tokens"] + stats["query_tokens"]) / seconds,
        "demos_dropped_for_context": stats["demos_dropped_for_context"],
        "refinement_curve": curve, "prompt_only_test": prompt_only,
    })
