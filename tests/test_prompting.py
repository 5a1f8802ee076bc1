"""Prompt building and verbalizer scoring with a tiny random causal model."""

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.prompting import (
    calibrated_proba,
    plan_blocks,
    verbalizer_ids,
    verbalizer_log_odds,
)


def test_blocks_never_show_a_query_its_own_label_and_balance_demos():
    labels = np.array([0, 1] * 30)
    plan = plan_blocks(60, np.arange(60), labels, k=6, block_size=25, balance=True, seed=0)
    assert [len(c) for c, _ in plan] == [25, 25, 10]
    for chunk, demos in plan:
        assert len(demos) == 6 and not set(chunk) & set(demos.tolist())
        assert labels[demos].sum() == 3  # balanced
    again = plan_blocks(60, np.arange(60), labels, 6, 25, True, 0)
    assert all((d1 == d2).all() for (_, d1), (_, d2) in zip(plan, again))  # seeded
    # queries outside the pool (test items) may draw on the whole pool
    assert len(plan_blocks(5, None, labels, 0, 5, True, 0)[0][1]) == 0


def test_shared_block_scores_equal_full_prompt_scores(tiny_models):
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.prompting import DemoPool, Prompter, _demo_block

    tok = models.load_tokenizer(tiny_models["decoder"])
    model = models.load_causal_lm(tiny_models["decoder"])
    verb = ["bad", "good"]
    ids = verbalizer_ids(tok, verb)
    texts = ["the movie was good", "bad food", "the staff were nice and the room was fine", "awful", "great place",
             "boring and sad", "nice"]
    labels = np.array([1, 0, 1, 0, 1, 0, 1])
    tmpl = "Review: {text} Sentiment:"
    acc = Accelerator()
    prompter = Prompter(model, tok, tmpl, verb, acc, batch_size=2)
    assert prompter.ids == ids
    cached, blocks, _ = prompter.block_log_odds(texts, DemoPool(texts, labels, True), 2, 3, 0, np.arange(7))
    full = [None] * 7
    for chunk, demos in plan_blocks(7, np.arange(7), labels, 2, 3, True, 0):
        for i in chunk:
            full[i] = _demo_block(tmpl, verb, texts, labels, demos) + tmpl.format(text=texts[i])
    assert np.allclose(cached, verbalizer_log_odds(model, tok, full, ids, 7, acc), atol=1e-4)
    assert blocks.tolist() == [0, 0, 0, 1, 1, 1, 2]


def test_verbalizers_must_be_single_distinct_tokens(tiny_models):
    from pipeline import models

    tok = models.load_tokenizer(tiny_models["decoder"])
    assert len(set(verbalizer_ids(tok, ["bad", "good"]))) == 2
    with pytest.raises(UserError, match="not one"):
        verbalizer_ids(tok, ["bad", "very good"])


def test_batched_left_padded_scores_equal_single_prompt_scores(tiny_models):
    from accelerate import Accelerator

    from pipeline import models

    tok = models.load_tokenizer(tiny_models["decoder"])
    model = models.load_causal_lm(tiny_models["decoder"])
    ids = verbalizer_ids(tok, ["bad", "good"])
    prompts = ["the movie was good", "bad", "the staff and the room were very nice and the food was fine"]
    acc = Accelerator()
    batched = verbalizer_log_odds(model, tok, prompts, ids, batch_size=3, accelerator=acc)
    single = np.array([verbalizer_log_odds(model, tok, [p], ids, 1, acc)[0] for p in prompts])
    assert np.allclose(batched, single, atol=1e-4)
    assert tok.padding_side == "right"  # restored after scoring


def test_calibration_sets_the_positive_share():
    odds = np.random.default_rng(0).normal(3.0, 1.0, 1000)  # a prior shifted far to class 1
    p = calibrated_proba(odds, 0.3)
    assert abs((p[:, 1] > 0.5).mean() - 0.3) < 0.01 and np.allclose(p.sum(1), 1)


def test_prompt_template_errors():
    from pipeline.data import dataset_prompt, prompt_spec

    with pytest.raises(UserError, match="needs a template"):
        prompt_spec(dataset_prompt(None), None, None)
    with pytest.raises(UserError, match="no {text} placeholder"):
        prompt_spec(dataset_prompt(None), "Review:", ["a", "b"])
    assert prompt_spec(dataset_prompt("multiemo"), None, None)[1] == [" negative", " positive"]


def test_chat_wrapping_needs_a_chat_template(tiny_models):
    from pipeline import models
    from pipeline.prompting import as_chat

    tok = models.load_tokenizer(tiny_models["decoder"])
    with pytest.raises(UserError, match="no chat template"):
        as_chat(tok, "Review: good Sentiment:")
    tok.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    assert as_chat(tok, "Review: good") == "<user>Review: good</user><bot>"


def test_a_split_is_tokenised_once_per_tokenizer_and_cut_ones_are_counted(tiny_models):
    from pipeline import models, predict

    texts = ["good movie", "bad food was very bad and the staff was awful", "fine"]
    calls = []
    tok = models.load_tokenizer(tiny_models["encoder"])
    real = type(tok).__call__

    def counting(self, batch, *a, **k):
        calls.append(list(batch) if isinstance(batch, list) else batch)
        return real(self, batch, *a, **k)

    type(tok).__call__ = counting
    predict._ENCODED.clear()  # what earlier tests left
    try:
        first = predict.encode(tok, texts, 6)
        again = predict.encode(models.load_tokenizer(tiny_models["encoder"]), texts[::-1], 6)  # another load
        encoded = [c for c in calls if isinstance(c, list)]
        assert encoded == [texts]  # the texts went through the tokenizer once
        assert again == first[::-1] and max(len(e["input_ids"]) for e in first) == 6
        assert predict.count_truncated(tok, texts, 6) == 1
        assert predict.encode(tok, texts, 8) != first  # another max_length is another cache
    finally:
        type(tok).__call__ = real


def test_length_batches_cover_every_row_once_and_keep_padding_low():
    from pipeline.prompting import length_batches

    lengths = [138, 12, 60, 58, 55, 40, 12, 11, 30, 29, 28, 9]
    batches = length_batches(lengths, 4)
    assert sorted(r for b in batches for r in b) == list(range(len(lengths)))
    assert batches[0] == [0]  # the long review alone: padding the others to 138 would waste most of the batch
    assert all(len(b) <= 4 for b in batches)
    for b in batches:
        assert sum(lengths[r] for r in b) >= 0.8 * len(b) * max(lengths[r] for r in b)
    assert length_batches([5] * 10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def _tiny_causal(kind: str, attn: str = "sdpa", **extra):
    """A tiny random causal LM of one architecture, on the tiny decoder's vocabulary."""
    import torch
    from conftest import VOCAB
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, eos_token_id=4,
                 bos_token_id=None, pad_token_id=None)
    config = AutoConfig.for_model(kind, **{**sizes, **extra})
    config._attn_implementation = attn
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("kind, attn, extra", [
    ("llama", "sdpa", {}), ("llama", "eager", {}), ("qwen2", "sdpa", {}), ("qwen3", "sdpa", {"head_dim": 8}),
    ("mistral", "sdpa", {"sliding_window": None})])
def test_packed_queries_score_as_padded_rows_and_as_whole_prompts(tiny_models, kind, attn, extra):
    """Queries packed into one row behind the block (positions restarted, a block-diagonal mask) give the
    log-odds of padded rows over copies of the block's cache, and of each prompt run whole."""
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.prompting import DemoPool, Prompter, _demo_block, packable

    tok = models.load_tokenizer(tiny_models["decoder"])
    model = _tiny_causal(kind, attn, **extra)
    assert packable(model)
    verb, tmpl = ["bad", "good"], "Review: {text} Sentiment:"
    texts = ["the movie was good", "bad food", "the staff were nice and the room was fine and the food was good",
             "awful", "great place", "boring and sad", "nice", "the room was bad"]
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    pool, acc = DemoPool(texts, labels, True), Accelerator()
    scores = {}
    for packed, pack_tokens in ((True, 12), (True, 384), (False, 384)):  # 12 tokens: packs of one or two queries
        prompter = Prompter(model, tok, tmpl, verb, acc, batch_size=3, packed=packed, pack_tokens=pack_tokens)
        scores[packed, pack_tokens], blocks, stats = prompter.block_log_odds(texts, pool, 2, 4, 0, np.arange(8))
        assert stats["query_tokens"] > 0 and stats["prefix_tokens"] > 0
    full = [None] * 8
    for chunk, demos in plan_blocks(8, np.arange(8), labels, 2, 4, True, 0):
        for i in chunk:
            full[i] = _demo_block(tmpl, verb, texts, labels, demos) + tmpl.format(text=texts[i])
    whole = np.array([verbalizer_log_odds(model, tok, [f], prompter.ids, 1, acc)[0] for f in full])
    for got in scores.values():
        assert np.allclose(got, whole, atol=1e-4)
    assert np.abs(whole).max() > 1e-3  # a random model's log-odds are not all zero: the comparison means something
    # no demonstrations and prompts that share no first token: no prefix, no cache, the queries alone packed
    bare = "{text} Sentiment:"
    packed = Prompter(model, tok, bare, verb, acc, batch_size=3).block_log_odds(texts, pool, 0, 8, 0)[0]
    alone = [verbalizer_log_odds(model, tok, [bare.format(text=t)], prompter.ids, 1, acc)[0] for t in texts]
    assert np.allclose(packed, alone, atol=1e-4)


def test_models_with_sliding_window_layers_are_scored_padded():
    from pipeline.prompting import packable

    assert not packable(_tiny_causal("mistral", sliding_window=16))
    assert not packable(_tiny_causal("gemma3_text", head_dim=8, sliding_window=16,
                                     layer_types=["sliding_attention", "full_attention"]))
    flash = _tiny_causal("llama")
    flash.config._attn_implementation_internal = "flash_attention_2"  # as a GPU load sets it: no 4-D masks there
    assert flash.config._attn_implementation == "flash_attention_2" and not packable(flash)
    assert packable(_tiny_causal("qwen2", use_sliding_window=False, sliding_window=16))
