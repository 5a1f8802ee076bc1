"""refine: in-context refinement (Somerstep et al., ICLR 2025). A causal refiner, shown weak-labelled
demonstrations from B in its prompt, relabels B; the strong model is fine-tuned on the refined labels.

The refiner is the strong model when it is causal (Somerstep's setting) or `refiner` (e.g. a causal model
beside an encoder student on CPU; the report names it). Queries share one demonstration block per chunk
of `block_size` (its KV cache is computed once); a block never holds its own queries. The refined soft label
is the calibrated softmax over the two verbalizers' next-token logits; `per_block` calibration thresholds
each block at the weak labels' positive rate among its queries, since a block moves a small model's label
prior a lot (measured on the quickstart; see the README). B's gold is used only for the refinement curve and
diagnostics.
"""

import time
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from pipeline import models
from pipeline.config.schema import MethodConfig
from pipeline.data import dataset_prompt, prompt_spec
from pipeline.errors import UserError
from pipeline.methods import generative
from pipeline.methods.base import LabelSet, MethodContext
from pipeline.plotting import pyplot, save

# classification: a verbalizer's next token relabels a text; generation: Somerstep et al.'s refinement batches
TASKS = ("classification", "generation")


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
    curve_shots: list[int] = field(default_factory=lambda: [0, 1, 2, 4, 8, 16], metadata={
        "help": "demonstration counts of the refinement curve (reporting only; [] skips it)"})
    curve_n: int = field(default=60, metadata={"help": "B examples scored per curve point (diagnostics: sample)"})
    curve_blocks: int = field(default=5, metadata={
        "help": "classification: the curve's examples are scored in this many demonstration blocks (each its own "
                "draw of demonstrations and its own per-block calibration), so the curve shows the spread "
                "over blocks"})
    prompt_only_n: int = field(default=150, metadata={
        "help": "test examples for the prompt-only baseline (refiner + `shots` weak demos, no training; 0 skips; "
                "diagnostics: sample)"})
    diagnostics: Literal["sample", "full"] = field(default="sample", metadata={
        "help": "sample: the refinement curve on curve_n examples of B and the prompt-only baseline on "
                "prompt_only_n test items, together cheaper than relabelling B (the report states both costs); "
                "full: the curve on all of B, the baseline on all of test"})
    batch_size: int = field(default=16, metadata={"help": "queries per forward pass"})
    max_tokens: int = field(default=2048, metadata={"help": "context budget; longer blocks lose demonstrations"})
    refinement_batch: int = field(default=5, metadata={
        "help": "generation task: questions per refinement batch; each is answered after the other members' "
                "weak answers as demonstrations (Somerstep et al.: 5)"})
    infer_and_respond: bool = field(default=False, metadata={
        "help": "generation task: the refiner first describes the batch's answer style in one sentence, then "
                "answers with that sentence in front instead of the demonstrations"})
    chat_template: bool = field(default=False, metadata={
        "help": "wrap each prompt in the tokenizer's chat template (off by default: on SmolLM2-135M the chat "
                "format collapsed to one label once demonstrations were added)"})

    def validate(self) -> list[str]:
        errors = []
        for key in ("shots", "curve_n", "prompt_only_n"):
            if getattr(self, key) < 0:
                errors.append(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.refinement_batch < 2:
            errors.append(f"refinement_batch: must be at least 2 (a query is never its own demonstration), "
                          f"got {self.refinement_batch}")
        for key in ("block_size", "batch_size", "max_tokens", "curve_blocks"):
            if getattr(self, key) < 1:
                errors.append(f"{key}: must be at least 1, got {getattr(self, key)}")
        if any(k < 0 for k in self.curve_shots):
            errors.append(f"curve_shots: demonstration counts must be >= 0, got {self.curve_shots}")
        return errors


def refiner_of(cfg: Config, strong_model: str) -> str:
    return cfg.refiner or strong_model


def preflight(cfg: Config, recipe) -> str | None:
    model = refiner_of(cfg, recipe.strong.model)
    if cfg.refiner is not None and (problem := models.check_spec(cfg.refiner)):
        return f"refiner: {problem}"
    if models.kind(model) == "encoder":
        return (f"refine needs a causal refiner, and the strong model {model!r} is an encoder: set the method's "
                "`refiner` to a causal model (e.g. refiner: smollm2-135m)")
    if recipe.task == "generation":
        return None  # answers are generated: no verbalizers to check
    try:
        _, verbalizers = prompt_spec(dataset_prompt(recipe.data.name), cfg.prompt, cfg.verbalizers)
    except UserError as e:
        return str(e)
    return models.verbalizer_problem(model, verbalizers)


def build_labels(cfg: Config, ctx: MethodContext) -> LabelSet:
    from pipeline.prompting import (  # torch: imported where it runs (fast `w2s keys`)
        DemoPool,
        calibrate,
    )

    if ctx.task == "generation":
        return generation_labels(cfg, ctx)

    template, verbalizers = prompt_spec(ctx.default_prompt, cfg.prompt, cfg.verbalizers)
    refiner = refiner_of(cfg, ctx.strong.model)
    prompter = ctx.prompter(refiner, template, verbalizers, batch_size=cfg.batch_size, max_tokens=cfg.max_tokens,
                            chat=cfg.chat_template)
    texts_b = ctx.texts("transfer")
    weak = ctx.weak_labels
    weak_hard = weak.argmax(1)
    rate = float(weak_hard.mean())
    gold_b = ctx.labels("transfer")  # diagnostics only
    pool = DemoPool(texts_b, weak_hard, cfg.balance_demos)

    def score(queries, pool_idx, k, seed, desc, block_size=cfg.block_size):
        return prompter.block_log_odds(queries, pool, k, block_size, seed, pool_idx, desc)

    def refined(odds, blocks, own_weak):
        rates = {int(b): float(own_weak[blocks == b].mean()) for b in np.unique(blocks)}
        return calibrate(odds, cfg.calibration, float(own_weak.mean()), blocks, rates)

    full = cfg.diagnostics == "full"
    start = time.perf_counter()
    odds, blocks, stats = score(texts_b, np.arange(len(texts_b)), cfg.shots, ctx.seed, "refine: B")
    seconds = {"relabel": time.perf_counter() - start}
    probs = refined(odds, blocks, weak_hard)

    start = time.perf_counter()
    curve = []
    n_curve = len(texts_b) if full else min(cfg.curve_n, len(texts_b))
    sub = np.random.default_rng(ctx.seed + 3).permutation(len(texts_b))[:n_curve]
    weak_sub = float((weak_hard[sub] == gold_b[sub]).mean())
    curve_block = max(1, -(-len(sub) // cfg.curve_blocks))  # ceil: at most curve_blocks blocks
    for k in cfg.curve_shots:
        row = {"shots": k, "n": int(len(sub)), "weak_accuracy_same_examples": weak_sub}
        if k == cfg.shots:  # the relabelling's own prompts of these examples: its scores, not a second pass
            o = odds[sub]
            row.update(blocks=int(len(np.unique(blocks[sub]))), from_relabelling=True)
            for mode in ("none", "prior", "per_block"):
                p = probs[sub] if mode == "per_block" else calibrate(o, mode, rate)
                row[f"accuracy_{mode}"] = float((p.argmax(1) == gold_b[sub]).mean())
            curve.append(row)
            continue
        o, bl, _ = score([texts_b[i] for i in sub], sub, k, ctx.seed + 100 + k, f"refine: curve k={k}", curve_block)
        row["blocks"] = int(len(np.unique(bl)))
        for mode in ("none", "prior", "per_block"):
            p = refined(o, bl, weak_hard[sub]) if mode == "per_block" else calibrate(o, mode, rate)
            right = p.argmax(1) == gold_b[sub]
            row[f"accuracy_{mode}"] = float(right.mean())
            row[f"block_accuracy_{mode}"] = [float(right[bl == b].mean()) for b in np.unique(bl)]
        curve.append(row)
    seconds["curve"] = time.perf_counter() - start

    start = time.perf_counter()
    prompt_only = None
    if cfg.prompt_only_n or full:
        test_texts, test_gold = ctx.texts("test"), ctx.labels("test")
        sel = np.random.default_rng(ctx.seed + 4).permutation(len(test_texts))[:None if full else cfg.prompt_only_n]
        o, bl, _ = score([test_texts[i] for i in sel], None, cfg.shots, ctx.seed + 5, "refine: prompt-only test")
        weak_test = ctx.weak_test_probs[sel].argmax(1)  # the weak model's labels of these test items: no gold
        prompt_only = {"n": int(len(sel)), "shots": cfg.shots}
        for mode in ("none", "prior", "per_block"):
            p = refined(o, bl, weak_test) if mode == "per_block" else calibrate(o, mode, float(weak_test.mean()))
            prompt_only[f"accuracy_{mode}"] = float((p.argmax(1) == test_gold[sel]).mean())
    seconds["prompt_only"] = time.perf_counter() - start
    acc = lambda p: float((p.argmax(1) == gold_b).mean())  # noqa: E731
    return LabelSet(targets=probs.astype(np.float32), diagnostics={
        "refiner": refiner, "refiner_is_student": cfg.refiner is None or cfg.refiner == ctx.strong.model,
        "shots": cfg.shots, "calibration": cfg.calibration, "block_size": cfg.block_size,
        "chat_template": cfg.chat_template,
        "weak_label_accuracy": acc(weak), "refined_label_accuracy": acc(probs),
        "refined_label_accuracy_uncalibrated": acc(calibrate(odds, "none", rate)),
        "refined_positive_share": float(probs.argmax(1).mean()), "weak_positive_share": rate,
        "scoring_examples_per_s": len(texts_b) / seconds["relabel"],
        "scoring_tokens_per_s": (stats["prefix_tokens"] + stats["query_tokens"]) / seconds["relabel"],
        "diagnostics": cfg.diagnostics, "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "demos_dropped_for_context": stats["demos_dropped_for_context"],
        "refinement_curve": curve, "prompt_only_test": prompt_only,
    })


def generation_labels(cfg: "Config", ctx: MethodContext) -> LabelSet:
    """Somerstep et al.'s refinement of weak answers (pipeline/methods/generative.py describes it)."""
    gen = ctx.gen
    refiner = cfg.refiner or ctx.strong.model
    answer = ctx.generator(refiner)
    questions, weak = ctx.texts("transfer"), ctx.weak_labels
    gold_b = ctx.labels("transfer")  # diagnostics only
    batches = generative.refinement_batches(len(questions), cfg.refinement_batch, ctx.seed)
    rows, prompts = generative.batch_prompts(gen, questions, weak, batches)
    styles = None
    if cfg.infer_and_respond:
        style_prompts = ["".join(gen.demonstration(questions[j], str(weak[j])) for j in b) + generative.STYLE_QUESTION
                         for b in batches]
        styles = answer(style_prompts, "refine: infer the style")
        style_of = {int(i): s for b, s in zip(batches, styles) for i in b}
        prompts = [gen.with_demonstrations(questions[i], [], preamble=f"{style_of[i]}\n\n") for i in rows]
    out = answer(prompts, "refine: B")
    refined = np.empty(len(questions), dtype=object)
    refined[rows] = out

    curve = []
    sub = np.random.default_rng(ctx.seed + 3).permutation(len(questions))[:min(cfg.curve_n, len(questions))]
    weak_sub = gen.accuracy(weak[sub], gold_b[sub])
    for k in cfg.curve_shots:  # k weak-labelled demonstrations drawn from B without the query itself
        rng = np.random.default_rng(ctx.seed + 100 + k)
        ps = [gen.with_demonstrations(questions[i], [(questions[j], str(weak[j]))
                                                     for j in generative.sampled_demos(len(questions), k, int(i), rng)])
              for i in sub]
        got = answer(ps, f"refine: curve k={k}")
        curve.append({"shots": k, "n": int(len(sub)), "accuracy": gen.accuracy(got, gold_b[sub]),
                      "weak_accuracy_same_examples": weak_sub})

    prompt_only = None
    if cfg.prompt_only_n:
        test_q, test_gold = ctx.texts("test"), ctx.labels("test")
        sel = np.random.default_rng(ctx.seed + 4).permutation(len(test_q))[:cfg.prompt_only_n]
        k = max(1, cfg.refinement_batch - 1)
        ps = generative.few_shot_prompts(gen, [test_q[i] for i in sel], questions, weak, k, ctx.seed + 5, False)
        got = answer(ps, "refine: prompt-only test")
        prompt_only = {"n": int(len(sel)), "shots": k, "accuracy": gen.accuracy(got, test_gold[sel])}
    return LabelSet(targets=refined, diagnostics={
        "refiner": refiner, "refiner_is_student": cfg.refiner is None or cfg.refiner == ctx.strong.model,
        "refinement_batch": cfg.refinement_batch, "infer_and_respond": cfg.infer_and_respond,
        "inferred_styles": list(styles[:5]) if styles else None,
        "weak_label_accuracy": gen.accuracy(weak, gold_b), "refined_label_accuracy": gen.accuracy(refined, gold_b),
        "refined_changed_share": float(np.mean([str(a) != str(b) for a, b in zip(refined, weak)])),
        "refinement_curve": curve, "prompt_only_test": prompt_only, "task": "generation"})


def plots(key: str, entry: dict, run_dir) -> list[str]:
    """Refined-label accuracy on B against the number of in-context demonstrations, per calibration."""
    d = entry.get("diagnostics") or {}
    curve = d.get("refinement_curve")
    if not curve:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    x = [c["shots"] for c in curve]
    if d.get("task") == "generation":  # one curve: exact match of the refiner's greedy answers
        ax.plot(x, [c["accuracy"] * 100 for c in curve], marker="o", color="#3b75af",
                label="refined answers (exact match)")
    for mode, color in (("per_block", "#3b75af"), ("prior", "#2ca02c"), ("none", "#999999")):
        if f"accuracy_{mode}" in curve[0]:
            ax.plot(x, [c[f"accuracy_{mode}"] * 100 for c in curve], marker="o", color=color,
                    label=f"refined labels, calibration: {mode}")
            spread = [(xi, c[f"block_accuracy_{mode}"]) for xi, c in zip(x, curve)
                      if len(c.get(f"block_accuracy_{mode}") or []) > 1]
            if len(spread) > 1:  # min-max over demonstration blocks (not at the relabelling's own k)
                ax.fill_between([xi for xi, _ in spread], [min(s) * 100 for _, s in spread],
                                [max(s) * 100 for _, s in spread], color=color, alpha=0.12, linewidth=0)
    weak = curve[0].get("weak_accuracy_same_examples", d["weak_label_accuracy"])
    ax.axhline(weak * 100, color="#444444", linestyle=":", label="weak labels (same examples)")
    ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks(x, [str(v) for v in x])
    ax.set_xlabel("weak-labelled demonstrations in context (k)")
    ax.set_ylabel(f"accuracy on {curve[0]['n']} B examples (%)")
    blocks = f", band: min-max over {curve[0]['blocks']} blocks" if curve[0].get("blocks", 1) > 1 else ""
    ax.set_title(f"{key}: in-context refinement by {d.get('refiner')}\n(B's gold: reporting only{blocks})", fontsize=9)
    ax.legend(fontsize=7)
    return [save(fig, run_dir, f"refine_{key}.png")]


def report_lines(key: str, entry: dict, results: dict) -> list[str]:
    """The refinement section of report.md: curve over k, label accuracy, prompt-only baseline."""
    d = entry.get("diagnostics") or {}
    if "refinement_curve" not in d:
        return []
    student = results["ceiling"].get("model")
    who = ("the strong student itself" if d.get("refiner_is_student")
           else f"`{d['refiner']}`, a separate causal model (the student, `{student}`, is trained on its labels)")
    if d.get("task") == "generation":
        return _generation_report(key, d, who)
    modes = ("none", "prior", "per_block")
    lines = ["", f"### In-context refinement: `{key}`", "",
             f"Labels refined by {who}, {d['shots']} weak-labelled demonstrations per block of "
             f"{d['block_size']} queries, calibration `{d['calibration']}`; scoring "
             f"{d['scoring_examples_per_s']:.1f} examples/s ({d['scoring_tokens_per_s']:.0f} tokens/s).",
             "", "| k | " + " | ".join(f"acc. ({m})" for m in modes) + " |", "|---|---|---|---|"]
    def cell(c, m):
        spread = c.get(f"block_accuracy_{m}")
        return f"{c[f'accuracy_{m}'] * 100:.1f}" + (f" ({min(spread) * 100:.0f}–{max(spread) * 100:.0f})"
                                                    if spread and len(spread) > 1 else "")
    for c in d["refinement_curve"]:
        lines.append(f"| {c['shots']} | " + " | ".join(cell(c, m) for m in modes) + " |")
    same = d["refinement_curve"][0].get("weak_accuracy_same_examples") if d["refinement_curve"] else None
    lines.append(f"| weak labels | {same * 100:.1f} on the same examples; {d['weak_label_accuracy'] * 100:.1f} "
                 "on all of B | | |" if same is not None else
                 f"| weak labels | {d['weak_label_accuracy'] * 100:.1f} (all of B) | | |")
    if d["refinement_curve"] and d["refinement_curve"][0].get("blocks", 1) > 1:
        lines.append(f"\nIn brackets: lowest–highest accuracy over the curve's {d['refinement_curve'][0]['blocks']} "
                     "demonstration blocks (each its own draw of demonstrations and per-block calibration).")
    reused = [c["shots"] for c in d["refinement_curve"] if c.get("from_relabelling")]
    if reused:
        lines.append(f"At k = {reused[0]} the curve reads the relabelling's own scores of its examples (the same "
                     f"prompts, in blocks of {d['block_size']}), per_block being the refined labels themselves.")
    lines.append(f"\nRefined labels on all of B: {d['refined_label_accuracy'] * 100:.1f}% "
                 f"(uncalibrated {d['refined_label_accuracy_uncalibrated'] * 100:.1f}%) vs weak "
                 f"{d['weak_label_accuracy'] * 100:.1f}%.")
    po = d.get("prompt_only_test")
    if po:
        lines += ["", f"Prompt-only baseline (refiner with {po['shots']} weak demonstrations, no fine-tuning) on "
                      f"{po['n']} test items: " + ", ".join(f"{m} {po.get(f'accuracy_{m}', float('nan')) * 100:.1f}%"
                                                         for m in modes)
                  + " (per_block uses the weak model's test labels for the shift, never gold)."]
    sec = d.get("seconds")
    if sec:
        lines += ["", f"Cost: relabelling B {sec['relabel']:.0f} s; diagnostics ({d['diagnostics']}) "
                      f"{sec['curve'] + sec['prompt_only']:.0f} s (curve {sec['curve']:.0f} s, prompt-only "
                      f"{sec['prompt_only']:.0f} s)" + ("; `diagnostics: full` scores the curve on all of B and the "
                                                          "baseline on all of test." if d["diagnostics"] == "sample"
                                                          else ".")]
    return lines


def _generation_report(key: str, d: dict, who: str) -> list[str]:
    """refine's section for a generation task: how the answers were refined, the curve, the prompt-only baseline."""
    how = ("each batch's answer style first summarised in one sentence by the refiner (infer and respond), "
           "which then answers with that sentence in front" if d["infer_and_respond"] else
           "each question answered greedily after the other members' weak answers as demonstrations")
    lines = ["", f"### In-context refinement: `{key}`", "",
             f"Answers refined by {who}: B cut into refinement batches of {d['refinement_batch']} questions, {how} "
             f"(never its own). {d['refined_changed_share'] * 100:.1f}% of the answers changed.", "",
             "| k demonstrations | refined answers: exact match (%) |", "|---|---|"]
    for c in d["refinement_curve"]:
        lines.append(f"| {c['shots']} | {c['accuracy'] * 100:.1f} |")
    if d["refinement_curve"]:
        c = d["refinement_curve"][0]
        lines.append(f"| weak answers | {c['weak_accuracy_same_examples'] * 100:.1f} (same {c['n']} questions) |")
    lines.append(f"\nRefined answers on all of B: {d['refined_label_accuracy'] * 100:.1f}% exact match vs weak "
                 f"{d['weak_label_accuracy'] * 100:.1f}%.")
    if d.get("inferred_styles"):
        lines.append(f"\nAn inferred style: \"{d['inferred_styles'][0]}\"")
    po = d.get("prompt_only_test")
    if po:
        lines += ["", f"Prompt-only baseline (refiner with {po['shots']} weak-answered demonstrations, no "
                      f"fine-tuning) on {po['n']} test questions: {po['accuracy'] * 100:.1f}% exact match."]
    return lines
