"""Generative-task leaves: answer checkers, and batched greedy decoding against one prompt at a time."""


import pytest

from pipeline.answers import check, gsm8k_answer, last_boxed, normalise


def test_exact_match_normalises_case_space_and_surrounding_punctuation():
    assert normalise("  The  Paris. ") == "the paris"
    assert check("exact", ["Paris.", "paris", "Lyon", '"Paris"'], ["paris"] * 4) == [True, True, False, True]
    assert check("exact", ["765", "-765", " -765.", "- paris"], ["-765", "-765", "-765", "paris"]) == [
        False, True, True, True]


def test_numbers_and_gsm8k_final_answers():
    ref = "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### 72"
    assert gsm8k_answer(ref) == 72
    assert check("gsm8k", ["so 24 + 48 = 72", "#### 72.0", "The answer is 1,072", "24 then #### 7"],
                 [ref] * 4) == [True, True, False, False]
    assert check("number", ["$1,234", "no number"], ["1234", "5"]) == [True, False]


def test_boxed_reads_the_last_balanced_box():
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert check("boxed", [r"so \boxed{ \frac{1}{2} }", r"\boxed{3}"], [r"\boxed{\frac{1}{2}}", "4"]) == [True, False]


def test_batched_greedy_matches_one_prompt_at_a_time_and_stops(tiny_models):
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.generate import cut_at_stop, generate

    path = tiny_models["decoder"]
    tok = models.load_tokenizer(path)
    model = models.load_causal_lm(path)
    prompts = ["Review: good", "Review: the food was very bad and", "a", "Review: nice staff and lovely room"]
    acc = Accelerator(cpu=True)
    batched = generate(model, tok, prompts, acc, max_new_tokens=6, batch_size=4)
    single = [generate(model, tok, [p], acc, max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == single and all(isinstance(a, str) for a in batched)
    assert any(batched)  # the random model does produce tokens
    word = next(w for a in batched for w in a.split())
    stopped = generate(model, tok, prompts, acc, max_new_tokens=6, batch_size=2, stop=[word])
    assert all(word not in a for a in stopped)
    assert [cut_at_stop(a, [word]) for a in batched] == stopped
    assert cut_at_stop("12\nQuestion: x", ["\n", "Question:"]) == "12"


def _decoder_tokenizer(tiny_models):
    from pipeline import models

    return models.load_tokenizer(tiny_models["decoder"])


def test_sft_labels_cover_exactly_the_answer(tiny_models):
    from pipeline.train.sft import IGNORE, encode

    tok = _decoder_tokenizer(tiny_models)
    ex = encode(tok, "Review: the food was", " very good", max_length=32)
    answer = [t for t, y in zip(ex["input_ids"], ex["labels"]) if y != IGNORE]
    assert tok.convert_ids_to_tokens(answer) == ["very", "good", "</s>"]
    assert all(y in (IGNORE, t) for t, y in zip(ex["input_ids"], ex["labels"]))
    cut = encode(tok, "Review: the food was the food was the food was", " very good", max_length=4)
    assert len(cut["input_ids"]) == 4 and tok.convert_ids_to_tokens(cut["input_ids"])[-3:] == ["very", "good", "</s>"]


CHAT = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}")
R1 = ("{% for m in messages %}{% if m['role'] == 'assistant' %}assistant:{{ m['content'].split('</think>')[-1] }}"
      "{% else %}{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}assistant:{% endif %}")


def test_sft_with_a_chat_template_and_refusing_one_that_drops_reasoning(tiny_models):
    from pipeline.errors import UserError
    from pipeline.train.sft import IGNORE, encode, render

    tok = _decoder_tokenizer(tiny_models)
    tok.chat_template = CHAT
    head, full = render(tok, "the food", " good", chat=True)
    assert head == "user: the food\nassistant:" and full.startswith(head)
    ex = encode(tok, "the food", " good", max_length=32, chat=True)
    answer = [t for t, y in zip(ex["input_ids"], ex["labels"]) if y != IGNORE]
    assert tok.convert_ids_to_tokens(answer) == ["good"]
    tok.chat_template = R1
    with pytest.raises(UserError, match="does not keep the assistant's answer intact"):
        encode(tok, "the food", "very </think> good", max_length=32, chat=True)


def test_sft_teaches_a_tiny_model_its_answers_and_generation_reproduces_them(tiny_models):
    from accelerate import Accelerator

    from pipeline import models
    from pipeline.config.schema import TrainConfig
    from pipeline.generate import generate
    from pipeline.train.sft import finetune_lm

    path = tiny_models["decoder"]
    tok = models.load_tokenizer(path)
    model = models.load_causal_lm(path)
    prompts = ["Review: good food Sentiment:", "Review: bad room Sentiment:"] * 8
    answers = [" great", " awful"] * 8
    acc = Accelerator(cpu=True)
    before = generate(model, tok, prompts[:2], acc, max_new_tokens=1)
    cfg = TrainConfig(epochs=30, lr=3e-3, batch_size=4, warmup_ratio=0.0, schedule="constant", group_by_length=False)
    out = finetune_lm(model, tok, prompts, answers, cfg, 16, acc, seed=0)
    after = generate(out["model"], tok, prompts[:2], acc, max_new_tokens=1)
    assert after == ["great", "awful"] and before != after
    assert out["final_loss"] < 0.1 and out["steps"] == 120
