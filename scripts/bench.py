"""Performance baseline: our training loop vs `transformers.Trainer`, labelling throughput, and achieved
training FLOP/s as a fraction of a measured fp32 matmul peak. One process, same model, data and
hyper-parameters for both loops.

    python scripts/bench.py                      # MiniLM, 512 multiemo examples, max_length 64
    python scripts/bench.py --model mpnet --n 128
    python scripts/bench.py --generation         # greedy decoding tokens/s, batched vs one at a time
    python scripts/bench.py --sft                # answer-only SFT of a causal LM: ours vs Trainer, examples/s
    python scripts/bench.py --peak               # features, KV-cached scoring, fine-tuning: fractions of peak

`--peak` measures the torch.mm peak (fp32, and bf16) in the same run and reports, side by side, each
workload's examples/s, tokens/s and achieved FLOP/s as a fraction of it, in fp32 and in the low-precision
paths tried (bf16 autocast; int8 dynamic quantisation of the linear layers for frozen inference). FLOPs are
the weights' matmul FLOPs: 2·N·tokens forward, 6·N·tokens training, N = non-embedding parameters (attention
scores, norms and the unused vocabulary projection are not counted, so the fractions are conservative).
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch


def mm_peak(dtype=torch.float32, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def non_embedding_params(model) -> int:
    """Parameters that take part in a token's matmuls: all but the embedding tables (an lm_head tied to
    the input embedding is not counted either)."""
    seen = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in seen)


def _precision(name: str):
    import contextlib

    return torch.autocast("cpu", dtype=torch.bfloat16) if name == "bf16" else contextlib.nullcontext()


def _int8(model):
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def bench_features(args, texts, precision: str) -> dict:
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.predict import encode, pooled_features

    path = models.resolve(args.feature_model)
    tok, backbone = models.load_tokenizer(path), models.load_backbone(path)
    n_params = non_embedding_params(backbone)
    if precision == "int8":
        backbone = _int8(backbone)
    acc = Accelerator(cpu=True)
    tokens = sum(len(e["input_ids"]) for e in encode(tok, texts, args.max_length))
    pooled_features(backbone, tok, texts[:32], args.max_length, "mean", 64, acc)  # warm-up
    with _precision(precision):
        start = time.perf_counter()
        feats = pooled_features(backbone, tok, texts, args.max_length, "mean", 64, acc)
        seconds = time.perf_counter() - start
    return {"examples_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds,
            "flops_per_s": 2 * n_params * tokens / seconds, "params": n_params, "output": feats}


def bench_scoring(args, texts, labels, precision: str) -> dict:
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.data import dataset_prompt, prompt_spec
    from pipeline.prompting import DemoPool, Prompter

    path = models.resolve(args.gen_model)
    tok, model = models.load_tokenizer(path), models.load_causal_lm(path)
    n_params = non_embedding_params(model)
    if precision == "int8":
        model = _int8(model)
    template, verbalizers = prompt_spec(dataset_prompt("multiemo"), None, None)
    prompter = Prompter(model, tok, template, verbalizers, Accelerator(cpu=True), batch_size=args.score_batch)
    pool = DemoPool(texts, labels, True)
    prompter.block_log_odds(texts[:8], pool, args.shots, 8, 1, np.arange(8))  # warm-up
    with _precision(precision):
        start = time.perf_counter()
        odds, _, stats = prompter.block_log_odds(texts, pool, args.shots, args.block_size, 0, np.arange(len(texts)))
        seconds = time.perf_counter() - start
    tokens = stats["prefix_tokens"] + stats["query_tokens"]
    return {"examples_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds,
            "flops_per_s": 2 * n_params * tokens / seconds, "params": n_params, "output": odds}


def bench_finetune(args, texts, labels, precision: str) -> dict:
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.config.schema import TrainConfig
    from pipeline.train.loop import finetune

    path = models.resolve(args.model)
    torch.manual_seed(0)
    tok = models.load_tokenizer(path)
    model = models.load_classifier(path, tok, "full")
    n_params = non_embedding_params(model)
    cfg = TrainConfig(epochs=1, lr=5e-5, batch_size=args.batch_size)
    with _precision(precision):  # an autocast around the loop: accelerate's precision is fixed per process
        start = time.perf_counter()
        out = finetune(model, tok, texts, np.eye(2, dtype=np.float32)[labels], cfg, args.max_length,
                       Accelerator(cpu=True), 0)
        seconds = time.perf_counter() - start
    return {"examples_per_s": len(texts) / seconds, "tokens_per_s": out["tokens"] / seconds,
            "flops_per_s": 6 * n_params * out["tokens"] / seconds, "params": n_params, "output": None}


def bench_peak(args) -> dict:
    """Every workload in fp32 and the low-precision paths, against the mm peaks of this run."""
    texts, labels = load_texts(args.n, 0)
    before = {"fp32": mm_peak(torch.float32), "bf16": mm_peak(torch.bfloat16)}
    rows = []
    runs = [("features", bench_features, (args, texts), ("fp32", "bf16", "int8")),
            ("scoring", bench_scoring, (args, texts[:args.score_n], labels[:args.score_n]), ("fp32", "bf16", "int8")),
            ("fine-tuning", bench_finetune, (args, texts, labels), ("fp32", "bf16"))]
    for name, fn, fn_args, precisions in runs:
        reference = None
        for precision in precisions:
            r = fn(*fn_args, precision)
            out = r.pop("output")
            if precision == "fp32":
                reference = out
            elif out is not None and reference is not None:  # how far the fast path moves the outputs
                r["max_abs_diff_vs_fp32"] = float(np.abs(np.asarray(out) - np.asarray(reference)).max())
                if name == "scoring":
                    r["label_agreement_vs_fp32"] = float(np.mean(np.sign(out) == np.sign(reference)))
            rows.append({"workload": name, "precision": precision, **r})
            print(f"  ... {name} {precision}: {r['flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
    # A shared machine's mm peak drifts by tens of percent within minutes (137 and 198 GFLOP/s seen on one
    # machine the same day): measured before and after the workloads, the larger is the denominator.
    after = {"fp32": mm_peak(torch.float32), "bf16": mm_peak(torch.bfloat16)}
    peaks = {k: max(before[k], after[k]) for k in before}
    for r in rows:
        r["fraction_of_fp32_peak"] = r["flops_per_s"] / peaks["fp32"]
    return {"threads": torch.get_num_threads(), "peaks_flops_per_s": peaks, "peaks_before_after": [before, after],
            "rows": rows,
            "models": {"features": args.feature_model, "scoring": args.gen_model, "fine-tuning": args.model},
            "n": args.n, "score_n": args.score_n, "shots": args.shots, "block_size": args.block_size,
            "max_length": args.max_length}


def load_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    from pipeline.config.schema import DataConfig
    from pipeline.data import balanced_split, load_examples

    texts, labels, _ = load_examples(DataConfig(name="multiemo"))
    idx = balanced_split(labels, {"bench": n}, seed)["bench"]
    return [texts[i] for i in idx], labels[idx]


def bench_ours(path, texts, labels, args) -> dict:
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.config.schema import TrainConfig
    from pipeline.predict import predict_proba
    from pipeline.train.loop import finetune

    torch.manual_seed(0)
    tok = models.load_tokenizer(path)
    model = models.load_classifier(path, tok, "full")
    params = sum(p.numel() for p in model.parameters())
    # Embedding lookups cost no matmul FLOPs: 6·N·tokens is counted over the other parameters.
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    dense = params - embedding
    cfg = TrainConfig(epochs=args.epochs, lr=5e-5, batch_size=args.batch_size, warmup_ratio=0.1, schedule="linear",
                      weight_decay=0.01, group_by_length=not args.no_group)
    acc = Accelerator()
    start = time.perf_counter()
    out = finetune(model, tok, texts, np.eye(2, dtype=np.float32)[labels], cfg, args.max_length, acc, 0)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    predict_proba(out["model"], tok, texts, args.max_length, 64, acc)
    label_s = time.perf_counter() - start
    return {"train_examples_per_s": len(texts) * args.epochs / train_s, "train_s": train_s,
            "label_examples_per_s": len(texts) / label_s, "tokens": out["tokens"], "params": params,
            "non_embedding_params": dense, "flops_per_s": 6 * dense * out["tokens"] / train_s,
            "flops_per_s_all_params": 6 * params * out["tokens"] / train_s}


def bench_trainer(path, texts, labels, args) -> dict:
    import datasets
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from pipeline import models

    torch.manual_seed(0)
    tok = models.load_tokenizer(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    model.config.pad_token_id = tok.pad_token_id
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels.tolist()})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=args.max_length), batched=True,
                remove_columns=["text"])
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                                  num_train_epochs=args.epochs, learning_rate=5e-5, warmup_steps=0.1,
                                  lr_scheduler_type="linear", weight_decay=0.01, report_to=[], save_strategy="no",
                                  logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
                                  dataloader_num_workers=0)
        trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
    return {"train_examples_per_s": len(texts) * args.epochs / train_s, "train_s": train_s}


def bench_generation(args) -> dict:
    """Greedy decoding tokens/s of a causal model, batched (`--gen-batch`) vs one prompt at a time, on
    arithmetic questions; answers must agree (batched greedy = one at a time)."""
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.generate import generate, tokens_generated

    path = models.resolve(args.gen_model)
    tok, model = models.load_tokenizer(path), models.load_causal_lm(path)
    rng = np.random.default_rng(0)
    prompts = [f"Question: What is {a} plus {b}?\nAnswer:" for a, b in rng.integers(1, 1000, size=(args.gen_n, 2))]
    acc = Accelerator(cpu=not torch.cuda.is_available())
    kw = {"max_new_tokens": args.gen_tokens, "stop": ["\n"]}
    generate(model, tok, prompts[:2], acc, batch_size=2, **kw)  # warm-up
    start = time.perf_counter()
    batched = generate(model, tok, prompts, acc, batch_size=args.gen_batch, **kw)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = [generate(model, tok, [q], acc, batch_size=1, **kw)[0] for q in prompts]
    single_s = time.perf_counter() - start
    n_tok = tokens_generated(tok, batched)
    return {"model": args.gen_model, "prompts": len(prompts), "batch_size": args.gen_batch, "tokens": n_tok,
            "batched_tokens_per_s": n_tok / batched_s, "single_tokens_per_s": tokens_generated(tok, single) / single_s,
            "speedup": single_s / batched_s, "answers_agree": sum(a == b for a, b in zip(batched, single))}


def sft_data(n: int) -> tuple[list[str], list[str]]:
    """n arithmetic (prompt, answer) pairs as the generation task formats them."""
    from pipeline.config.schema import DataConfig
    from pipeline.data import load_examples

    questions, answers, _ = load_examples(DataConfig(name="arithmetic"), "generation")
    idx = np.random.default_rng(0).permutation(len(questions))[:n]
    return [f"Question: {questions[i]}\nAnswer:" for i in idx], [f" {answers[i]}" for i in idx]


def bench_sft(args) -> dict:
    """Supervised fine-tuning examples/s, loss on answer tokens only: `finetune_lm` vs `transformers.Trainer`
    on the same tokenised examples (our `encode`: same tokens, same label mask), model, optimiser settings."""
    import datasets
    from accelerate import Accelerator
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from pipeline import models
    from pipeline.config.schema import TrainConfig
    from pipeline.train.sft import encode, finetune_lm

    path = models.resolve(args.gen_model)
    prompts, answers = sft_data(args.n)
    group = not args.no_group
    cfg = TrainConfig(epochs=args.epochs, lr=1e-4, batch_size=args.batch_size, warmup_ratio=0.1, schedule="linear",
                      weight_decay=0.01, group_by_length=group)
    torch.manual_seed(0)
    tok = models.load_tokenizer(path)
    start = time.perf_counter()
    ours = finetune_lm(models.load_causal_lm(path), tok, prompts, answers, cfg, args.max_length, Accelerator(), 0)
    ours_s = time.perf_counter() - start
    torch.manual_seed(0)
    tok = models.load_tokenizer(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    items = [encode(tok, p, a, args.max_length) for p, a in zip(prompts, answers)]
    ds = datasets.Dataset.from_list(items)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                                  num_train_epochs=args.epochs, learning_rate=1e-4, warmup_steps=0.1,
                                  lr_scheduler_type="linear", weight_decay=0.01, report_to=[], save_strategy="no",
                                  logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
                                  dataloader_num_workers=0,
                                  train_sampling_strategy="group_by_length" if group else "random")
        trainer = Trainer(model=models.load_causal_lm(path), args=targs, train_dataset=ds,
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
        start = time.perf_counter()
        trainer.train()
        theirs_s = time.perf_counter() - start
    n = len(prompts) * args.epochs
    return {"model": args.gen_model, "examples": len(prompts), "epochs": args.epochs, "batch_size": args.batch_size,
            "ours_examples_per_s": n / ours_s, "trainer_examples_per_s": n / theirs_s,
            "ratio_ours_over_trainer": theirs_s / ours_s, "ours_final_loss": ours["final_loss"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm", help="alias, folder or hub id")
    p.add_argument("--n", type=int, default=512, help="training examples")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--no-group", action="store_true",
                   help="random batches in our loop too (Trainer's tutorial set-up has no length grouping)")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--generation", action="store_true",
                   help="instead: greedy generation tokens/s, batched vs one prompt at a time")
    p.add_argument("--sft", action="store_true",
                   help="instead: answer-only SFT of --gen-model on --n arithmetic examples, ours vs Trainer")
    p.add_argument("--gen-model", default="smollm2-135m")
    p.add_argument("--gen-n", type=int, default=64, help="prompts (generation)")
    p.add_argument("--gen-batch", type=int, default=32)
    p.add_argument("--gen-tokens", type=int, default=12, help="max new tokens (generation)")
    p.add_argument("--peak", action="store_true",
                   help="instead: features, KV-cached scoring and fine-tuning as fractions of the mm peak")
    p.add_argument("--feature-model", default="mpnet", help="backbone of the features workload (--peak)")
    p.add_argument("--score-n", type=int, default=200, help="queries of the scoring workload (--peak)")
    p.add_argument("--shots", type=int, default=8, help="demonstrations per block (--peak scoring)")
    p.add_argument("--block-size", type=int, default=100, help="queries per demonstration block (--peak)")
    p.add_argument("--score-batch", type=int, default=16, help="queries per forward pass (--peak scoring)")
    args = p.parse_args()
    os.environ["W2S_NO_PROGRESS"] = "1"
    if args.peak:
        r = bench_peak(args)
        pk = r["peaks_flops_per_s"]
        b, a = r["peaks_before_after"]
        print(f"torch.mm peak, {r['threads']} threads: fp32 {pk['fp32'] / 1e9:.0f} GFLOP/s, "
              f"bf16 {pk['bf16'] / 1e9:.0f} GFLOP/s (the larger of before / after the workloads: fp32 "
              f"{b['fp32'] / 1e9:.0f} / {a['fp32'] / 1e9:.0f}, bf16 {b['bf16'] / 1e9:.0f} / {a['bf16'] / 1e9:.0f})")
        print(f"{'workload':12s} {'precision':9s} {'ex/s':>8s} {'tokens/s':>9s} {'GFLOP/s':>8s} "
              f"{'of fp32 peak':>12s}  vs fp32 outputs")
        for row in r["rows"]:
            diff = (f"max |diff| {row['max_abs_diff_vs_fp32']:.2g}" if "max_abs_diff_vs_fp32" in row else "")
            if "label_agreement_vs_fp32" in row:
                diff += f", labels agree {row['label_agreement_vs_fp32']:.1%}"
            print(f"{row['workload']:12s} {row['precision']:9s} {row['examples_per_s']:8.1f} "
                  f"{row['tokens_per_s']:9.0f} {row['flops_per_s'] / 1e9:8.1f} {row['fraction_of_fp32_peak']:12.1%}"
                  f"  {diff}")
        return _save(args.json, r)
    if args.generation:
        g = bench_generation(args)
        print(f"generation {g['model']}, {g['prompts']} prompts, {g['tokens']} tokens: "
              f"batched (batch {g['batch_size']}) {g['batched_tokens_per_s']:.1f} tok/s, "
              f"one at a time {g['single_tokens_per_s']:.1f} tok/s, "
              f"{g['speedup']:.1f}x; {g['answers_agree']}/{g['prompts']} answers identical")
        return _save(args.json, g)
    if args.sft:
        s = bench_sft(args)
        print(f"SFT {s['model']}, {s['examples']} examples x {s['epochs']} epoch(s), batch {s['batch_size']}: "
              f"ours {s['ours_examples_per_s']:.2f} ex/s, Trainer {s['trainer_examples_per_s']:.2f} ex/s, "
              f"ratio ours/Trainer {s['ratio_ours_over_trainer']:.2f}x")
        return _save(args.json, s)
    from pipeline import models

    path = models.resolve(args.model)
    texts, labels = load_texts(args.n, 0)
    peak = mm_peak()
    ours = bench_ours(path, texts, labels, args)
    theirs = bench_trainer(path, texts, labels, args)
    result = {"model": args.model, "n": args.n, "max_length": args.max_length, "batch_size": args.batch_size,
              "threads": torch.get_num_threads(), "ours": ours, "trainer": theirs,
              "speed_ratio_ours_over_trainer": ours["train_examples_per_s"] / theirs["train_examples_per_s"],
              "mm_fp32_peak_flops": peak, "mfu_vs_mm_peak": ours["flops_per_s"] / peak}
    print(f"model {args.model}, {args.n} examples, max_length "
          f"{args.max_length}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"  training  ours    {ours['train_examples_per_s']:7.2f} ex/s ({ours['train_s']:.1f} s)")
    print(f"  training  Trainer {theirs['train_examples_per_s']:7.2f} ex/s ({theirs['train_s']:.1f} s)")
    print(f"  ratio ours/Trainer: {result['speed_ratio_ours_over_trainer']:.2f}x")
    print(f"  labelling ours    {ours['label_examples_per_s']:7.2f} ex/s")
    print(f"  training FLOP/s ≈ 6·N·tokens/s, N = {ours['non_embedding_params'] / 1e6:.1f}M non-embedding params: "
          f"{ours['flops_per_s'] / 1e9:.1f} GFLOP/s; torch.mm fp32 peak {peak / 1e9:.1f} GFLOP/s -> "
          f"{result['mfu_vs_mm_peak']:.1%} of peak (counting all {ours['params'] / 1e6:.1f}M params: "
          f"{ours['flops_per_s_all_params'] / peak:.1%})")
    _save(args.json, result)


def _save(path: str | None, numbers: dict) -> None:
    """`--json`: the numbers printed, to a file."""
    if path:
        with open(path, "w") as f:
            json.dump(numbers, f, indent=2)


if __name__ == "__main__":
    main()
