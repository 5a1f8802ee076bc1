"""Prompt building and verbalizer scoring with a tiny random causal model."""

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.prompting import build_prompts, calibrated_proba, verbalizer_ids, verbalizer_log_odds


def test_prompts_never_show_the_query_its_own_label():
    texts = [f"text{i}" for i in range(6)]
    labels = np.array([0, 1, 0, 1, 0, 1])
    prompts, used = build_prompts("Q: {text} A:", ["no", "yes"], texts, texts, labels, k=3, seed=0,
                                  exclude_self=True)
    for i, (p, demos) in enumerate(zip(prompts, used)):
        assert len(demos) == 3 and i not in demos
        assert p.endswith(f"Q: text{i} A:") and p.count(f"text{i}") == 1
        for j in demos:
            assert f"Q: text{j} A:{['no', 'yes'][labels[j]]}" in p
    same, _ = build_prompts("Q: {text} A:", ["no", "yes"], texts, texts, labels, 3, 0, True)
    assert same == prompts  # seeded
    zero, used0 = build_prompts("Q: {text} A:", ["no", "yes"], texts, texts, labels, 0, 0, True)
    assert zero[2] == "Q: text2 A:" and used0[2] == []


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


def test_prompt_template_errors(tmp_path):
    from pipeline.config import load_recipe
    from pipeline.prompting import prompt_spec

    r = load_recipe(None, ["data.path=x.jsonl"])
    with pytest.raises(UserError, match="needs a template"):
        prompt_spec(r, None, None)
    with pytest.raises(UserError, match="no {text} placeholder"):
        prompt_spec(r, "Review:", ["a", "b"])
    assert prompt_spec(load_recipe(None, ["data.name=multiemo"]), None, None)[1] == [" negative", " positive"]


def test_chat_wrapping_needs_a_chat_template(tiny_models):
    from pipeline import models
    from pipeline.prompting import as_chat

    tok = models.load_tokenizer(tiny_models["decoder"])
    with pytest.raises(UserError, match="no chat template"):
        as_chat(tok, "Review: good Sentiment:")
    tok.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    assert as_chat(tok, "Review: good") == "<user>Review: good</user><bot>"
