"""GPU smoke test: the tiny recipe on CUDA against the same recipe on CPU, PASS/FAIL per check.

    bash scripts/gpu_smoke.sh [OUT_DIR]        # needs one CUDA GPU; about 2-4 minutes

Tiny random models (a BERT encoder as weak model, a Llama decoder as strong model) and tiny data are built
in-process, as in the tests. Each variant runs once with CUDA hidden (fp32 CPU reference) and on the GPU:
  - head mode, with selective (few-shot prompt self-labels of the decoder) and refine (the decoder as refiner)
  - full fine-tuning of the decoder
  - LoRA on the decoder with bf16 weights (dtype: bfloat16), trainable weights in fp32
The GPU runs twice: fp32 (must equal the CPU run up to kernel differences, |dp| < 2e-3) and bf16 autocast
(runtime.mixed_precision: bf16; must stay close, mean |dp| < 0.05, and agree on >= 90% of the argmaxes).
Exit code 1 when any check fails.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "head": {"strong.mode": "head", "methods": "selective_refine"},
    "full": {"strong.mode": "full"},
    "lora_bf16": {"strong.mode": "lora", "strong.dtype": "bfloat16"},
}
METHODS = {
    "selective_refine": """
  - name: naive
  - {name: selective, folds: 3, weak_folds: 2, shots: 2, prompt: "Review: {text} Sentiment:", verbalizers: [bad, good]}
  - {name: refine, shots: 2, block_size: 16, curve_shots: [0, 2], curve_n: 20, prompt_only_n: 20,
     prompt: "Review: {text} Sentiment:", verbalizers: [bad, good]}""",
    "naive": "\n  - name: naive",
}


def build_fixtures(root: Path) -> tuple[str, str, Path]:
    import gzip

    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    from tests.conftest import VOCAB, _tokenizer, make_rows

    torch.manual_seed(0)
    enc, dec = root / "tiny-bert", root / "tiny-llama"
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)).save_pretrained(enc)
    _tokenizer("encoder").save_pretrained(enc)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                 eos_token_id=4, bos_token_id=None, pad_token_id=None)).save_pretrained(dec)
    _tokenizer("decoder").save_pretrained(dec)
    data = root / "tiny.jsonl.gz"
    with gzip.open(data, "wt") as f:
        for row in make_rows(240):
            f.write(json.dumps(row) + "\n")
    return str(enc), str(dec), data


def recipe(root: Path, enc: str, dec: str, data: Path, methods: str) -> Path:
    path = root / f"tiny_{methods}.yaml"
    path.write_text(f"""
name: tiny
data: {{path: {data}, text_field: review, label_field: sentiment, n_train_weak: 60, n_transfer: 61, n_test: 59,
        max_length: 16}}
weak:
  model: {enc}
  mode: full
  train: {{epochs: 6, lr: 2.0e-3, batch_size: 8}}
strong:
  model: {dec}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}
  train: {{epochs: 2, lr: 1.0e-3, batch_size: 8}}
methods:{METHODS[methods]}
evaluate: {{bootstrap: 100}}
theory: {{enabled: false}}
""")
    return path


def run(recipe_path: Path, out: Path, overrides: dict, cuda: bool) -> tuple[bool, str]:
    env = {**os.environ, "W2S_NO_PROGRESS": "1"}
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "pipeline", "run", str(recipe_path), f"output_dir={out}", "--no-progress",
           *[f"{k}={v}" for k, v in overrides.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-1500:]


def predictions(run_dir: Path) -> dict[str, list[float]]:
    out = {}
    for path in sorted(run_dir.rglob("predictions.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        out[str(path.parent.relative_to(run_dir))] = [r["prob"] for r in rows]
    return out


def main() -> int:
    import torch

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="w2s-gpu-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    results = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)

    check("a CUDA device is visible", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none: nothing to compare")
    if not torch.cuda.is_available():
        return 1
    enc, dec, data = build_fixtures(out)
    for variant, settings in VARIANTS.items():
        overrides = {k: v for k, v in settings.items() if k != "methods"}
        path = recipe(out, enc, dec, data, settings.get("methods", "naive"))
        runs = {}
        for label, cuda, extra in [("cpu", False, {}), ("cuda_fp32", True, {"runtime.mixed_precision": "no"}),
                                   ("cuda_bf16", True, {"runtime.mixed_precision": "bf16"})]:
            ok, log = run(path, out / variant / label, {**overrides, **extra}, cuda)
            check(f"{variant}: {label} run finishes", ok, "" if ok else log.replace("\n", " | ")[-600:])
            if ok:
                run_dir = out / variant / label / "tiny"
                device = json.loads((run_dir / "env.json").read_text())["device"]
                want = "cuda" if cuda else "cpu"
                check(f"{variant}: {label} ran on {want}", device.startswith(want), device)
                runs[label] = predictions(run_dir)
        if "cpu" not in runs:
            continue
        for label, tol in (("cuda_fp32", 2e-3), ("cuda_bf16", None)):
            if label not in runs:
                continue
            for stage, ref in runs["cpu"].items():
                got = runs[label].get(stage)
                if got is None or len(got) != len(ref):
                    check(f"{variant}: {label} {stage} predictions present", False)
                    continue
                diffs = [abs(a - b) for a, b in zip(ref, got)]
                agree = sum((a > 0.5) == (b > 0.5) for a, b in zip(ref, got)) / len(ref)
                if tol is not None:
                    check(f"{variant}: {label} {stage} = cpu", max(diffs) < tol, f"max |dp| {max(diffs):.2e}")
                else:
                    mean = sum(diffs) / len(diffs)
                    check(f"{variant}: {label} {stage} ~ cpu", mean < 0.05 and agree >= 0.9,
                          f"mean |dp| {mean:.3f}, argmax agreement {agree:.0%}")
    print(f"{sum(results)}/{len(results)} checks passed; runs in {out}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
