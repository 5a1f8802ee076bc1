"""Fixtures: tiny random models built in-process from AutoConfig, a word-level tokenizer, tiny data.

Nothing here touches a hub or the packaged weights, so the suite runs anywhere in seconds.
"""

import contextlib
import gzip
import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSITIVE = ["good", "great", "fine", "lovely", "superb", "nice", "happy", "excellent"]
NEGATIVE = ["bad", "awful", "poor", "sad", "terrible", "ugly", "boring", "weak"]
NEUTRAL = ["the", "a", "movie", "food", "room", "was", "is", "very", "quite", "and", "staff", "place", "it"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"]
VOCAB = SPECIALS + POSITIVE + NEGATIVE + NEUTRAL + [" negative", " positive", "Review:", "Sentiment:"]


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if kind == "encoder":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]")
    # Decoder: no pad token on purpose (the pipeline must pick one, never assume id 0).
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="[UNK]")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """{'encoder': path, 'decoder': path} of tiny random BERT and Llama models."""
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    enc_dir, dec_dir = root / "tiny-bert", root / "tiny-llama"
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(enc_dir)
    _tokenizer("encoder").save_pretrained(enc_dir)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                 eos_token_id=4, bos_token_id=None, pad_token_id=None)).save_pretrained(dec_dir)
    _tokenizer("decoder").save_pretrained(dec_dir)
    return {"encoder": str(enc_dir), "decoder": str(dec_dir)}


def make_rows(n: int, seed: int = 0, noise: float = 0.1) -> list[dict]:
    """Sentiment-like rows: the label decides which polarity words appear; `noise` flips labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(1, 4))]
        for _ in range(rng.randint(2, 4)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if y else NEGATIVE))
        label = 1 - y if rng.random() < noise else y
        rows.append({"id": i, "review": " ".join(words), "sentiment": ["neg", "pos"][label]})
    return rows


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    path = tmp_path / "tiny.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for row in make_rows(240):
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def tiny_recipe(tmp_path, tiny_models, tiny_data) -> Path:
    """A full recipe on tiny models and data: every stage runs in seconds."""
    text = f"""
name: tiny
output_dir: {tmp_path / 'runs'}
data:
  path: {tiny_data}
  text_field: review
  label_field: sentiment
  n_train_weak: 60
  n_transfer: 60
  n_test: 60
  max_length: 16
weak:
  model: {tiny_models['encoder']}
  mode: full
  train: {{epochs: 6, lr: 2.0e-3, batch_size: 8}}
strong:
  model: {tiny_models['decoder']}
  mode: head
  head: {{cv_folds: 3, l2_grid: [0.01, 1.0]}}
methods:
  - name: naive
  - {{name: naive, id: naive_hard, hard: true}}
  - name: graph_smooth
  - {{name: selective, folds: 3, weak_folds: 2, shots: 2, prompt: "Review: {{text}} Sentiment:", verbalizers: [bad, good]}}
  - {{name: refine, shots: 2, block_size: 16, curve_shots: [0, 2], curve_n: 20, prompt_only_n: 20, prompt: "Review: {{text}} Sentiment:", verbalizers: [bad, good]}}
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
"""
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """What the theory stage does by default: small tensors are fastest on one thread, even on a busy
    machine (tests/theory use it for every test)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextlib.contextmanager
def interrupted_backward(after: int):
    """Inside: the (after + 1)-th backward pass of any training loop raises KeyboardInterrupt (a Ctrl-C
    mid-training); the real one is back on exit."""
    import accelerate

    calls, backward = [0], accelerate.Accelerator.backward

    def dying(self, loss, **kw):
        calls[0] += 1
        if calls[0] > after:
            raise KeyboardInterrupt
        return backward(self, loss, **kw)

    accelerate.Accelerator.backward = dying
    try:
        yield
    finally:
        accelerate.Accelerator.backward = backward
