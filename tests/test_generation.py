"""Generative-task leaves: answer checkers, and batched greedy decoding against one prompt at a time."""


import numpy as np
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


# ------------------------------------------------------------------------------ methods on fake contexts


def _gen():
    from pipeline.tasks.generation import Generation

    return Generation()


def test_refinement_batches_partition_the_rows_and_never_show_a_query_itself():
    from pipeline.methods.generative import batch_prompts, refinement_batches, sampled_demos

    for n, size in ((23, 5), (21, 5), (2, 5), (10, 4)):
        batches = refinement_batches(n, size, seed=n)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(n)) and all(len(b) >= 2 for b in batches)
        assert all(len(b) <= size + 1 for b in batches)
    questions = [f"q{i} ?" for i in range(11)]
    answers = [f"a{i}" for i in range(11)]
    batches = refinement_batches(11, 4, seed=0)
    rows, prompts = batch_prompts(_gen(), questions, answers, batches)
    assert sorted(rows) == list(range(11))
    for i, p in zip(rows, prompts):
        batch = next(b for b in batches if i in b)
        assert p.endswith(f"Question: {questions[i]}\nAnswer:") and p.count(questions[i]) == 1
        assert f"Answer: {answers[i]}\n" not in p  # the query's own (weak) answer is never a demonstration
        assert all(f"Question: {questions[j]}\nAnswer: {answers[j]}\n\n" in p for j in batch if j != i)
        assert p.count("Question:") == len(batch)
    rng = np.random.default_rng(0)
    assert all(3 not in sampled_demos(5, 4, 3, rng) for _ in range(20))
    assert len(sampled_demos(5, 9, 3, rng)) == 4


def _fake_context(n=60, seed=0):
    """Questions 'qI' with gold 'aI'; the weak model is right on a third; the strong model's own few-shot
    answer is right exactly on the 'easy' questions, which its features reveal."""
    from pipeline.config.schema import ModelConfig
    from pipeline.methods.base import MethodContext, Split

    rng = np.random.default_rng(seed)
    splits, feats = {}, {}
    for s, offset in (("train_weak", 0), ("transfer", 1000), ("test", 2000)):
        ids = list(range(offset, offset + n))
        easy = rng.random(n) < 0.5
        texts = [f"q{i} {'easy' if e else 'hard'}" for i, e in zip(ids, easy)]
        splits[s] = Split(texts, np.array([f"a{i}" for i in ids], dtype=object), ids)
        feats[s] = np.c_[easy * 2.0 - 1, rng.normal(size=(n, 3))].astype(np.float32)
    gold = {t: str(y) for s in splits.values() for t, y in zip(s.texts, s.labels)}

    def weak_of(texts):
        return np.array([gold[t] if k % 3 == 0 else "wrong" for k, t in enumerate(texts)], dtype=object)

    prompts_seen = []

    def generator(spec):
        def answer(prompts, desc):
            prompts_seen.append((desc, list(prompts)))
            out = []
            for p in prompts:
                query = p.rsplit("Question: ", 1)[1].split("\nAnswer:")[0]
                out.append(gold[query] if "easy" in query else "nope")
            return out
        return answer

    def fit_weak(train_rows, predict_rows, desc):
        return weak_of([splits["train_weak"].texts[i] for i in predict_rows])

    ctx = MethodContext(seed=seed, splits=splits, weak_labels=weak_of(splits["transfer"].texts),
                        weak_train_probs=weak_of(splits["train_weak"].texts),
                        weak_test_probs=weak_of(splits["test"].texts), strong=ModelConfig(model="fake"),
                        features=lambda names: {s: feats[s] for s in names}, fit_weak=fit_weak,
                        prompter=None, task="generation", gen=_gen(), generator=generator)
    return ctx, prompts_seen


def test_refine_generation_answers_each_question_after_its_batch_and_keeps_the_rows():
    from pipeline.methods import METHODS

    ctx, seen = _fake_context()
    cfg = METHODS["refine"].Config(refinement_batch=5, curve_shots=[0, 2], curve_n=20, prompt_only_n=10)
    out = METHODS["refine"].build_labels(cfg, ctx)
    qb, gold_b = ctx.texts("transfer"), ctx.labels("transfer")
    easy = np.array(["easy" in q for q in qb])
    # the refiner's answer lands on its own question: right on easy ones, "nope" elsewhere
    assert [a == g for a, g in zip(out.targets, gold_b)] == easy.tolist()
    assert all(a == "nope" for a in out.targets[~easy])
    desc, prompts = seen[0]
    assert desc == "refine: B" and len(prompts) == len(qb)
    for p in prompts:
        query = p.rsplit("Question: ", 1)[1].split("\nAnswer:")[0]
        assert p.count(query) == 1 and 3 <= p.count("Question:") <= 6  # 2..5 demonstrations + the query
    d = out.diagnostics
    assert [c["shots"] for c in d["refinement_curve"]] == [0, 2] and d["prompt_only_test"]["n"] == 10
    assert d["refined_label_accuracy"] == pytest.approx(easy.mean())
    assert d["weak_label_accuracy"] == pytest.approx(np.mean([k % 3 == 0 for k in range(len(qb))]))
    curve_prompts = dict(seen)["refine: curve k=2"]
    assert all(p.count("Question:") == 3 for p in curve_prompts)
    ir = METHODS["refine"].build_labels(METHODS["refine"].Config(infer_and_respond=True, curve_shots=[],
                                                                 prompt_only_n=0), ctx)
    styles = next(p for d_, p in seen if d_ == "refine: infer the style")
    assert len(styles) == 12 and all(p.endswith("describe the style and format of the answers above:")
                                     for p in styles)
    assert len(ir.targets) == len(qb) and ir.diagnostics["infer_and_respond"]


def test_selective_generation_routes_to_own_answers_where_pik_says_it_knows():
    from pipeline.methods import METHODS
    from pipeline.methods.generative import route

    answers, routed = route(np.array([0.9, 0.2, 0.5]), 0.5, ["own0", "own1", "own2"], ["w0", "w1", "w2"])
    assert answers.tolist() == ["own0", "w1", "own2"] and routed.tolist() == [True, False, True]
    assert route(np.array([0.9]), np.inf, ["o"], ["w"])[0].tolist() == ["w"]

    ctx, _ = _fake_context(n=80)
    cfg = METHODS["selective"].Config(shots=2, weak_folds=2, min_routed=3)
    out = METHODS["selective"].build_labels(cfg, ctx)
    qb, gold_b, weak_b = ctx.texts("transfer"), ctx.labels("transfer"), ctx.weak_labels
    easy = np.array(["easy" in q for q in qb])
    routed = np.array([a != w for a, w in zip(out.targets, weak_b)])
    d = out.diagnostics
    # P(IK) reads "easy" off the features: own answers on the easy questions, the weak answers elsewhere
    assert d["pik_auroc_heldout_A"] > 0.9 and d["tau"] is not None
    assert (routed <= easy).all() and routed.sum() >= 0.8 * (easy & (weak_b != gold_b)).sum()
    assert d["label_accuracy"] > d["weak_label_accuracy"] + 0.2
    assert routed.mean() <= d["routed_share_B"] <= easy.mean()  # own == weak where both are right
    assert d["self_accuracy_B"] == pytest.approx(easy.mean())


# ------------------------------------------------------------------------------ a generation run end to end


def _qa_rows(n, seed=0):
    """Questions of sentiment words whose answer is 'good' or 'bad' (a word of the tiny vocabulary)."""
    import random

    from conftest import NEGATIVE, NEUTRAL, POSITIVE

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = [rng.choice(NEUTRAL), rng.choice(POSITIVE if pos else NEGATIVE), rng.choice(NEUTRAL),
                 rng.choice(POSITIVE if pos else NEGATIVE)]
        rows.append({"question": " ".join(words), "reference": "good" if pos else "bad"})
    return rows


def _generation_recipe(tmp_path, tiny_models, methods: str, extra: str = ""):
    import json

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _qa_rows(200)))
    recipe = tmp_path / "gen.yaml"
    recipe.write_text(f"""
name: gen
task: generation
output_dir: {tmp_path / 'runs'}
data: {{path: {data}, prompt_field: question, answer_field: reference, n_train_weak: 40, n_transfer: 40,
        n_test: 40, max_length: 16}}
generation: {{template: "Review: {{prompt}} Sentiment:", max_new_tokens: 3, stop: ["."], batch_size: 8}}
weak: {{model: {tiny_models['decoder']}, mode: full, train: {{epochs: 1, lr: 1.0e-4, batch_size: 8}}}}
strong: {{model: {tiny_models['decoder']}, mode: full, train: {{epochs: 12, lr: 3.0e-3, batch_size: 8,
          warmup_ratio: 0.0, schedule: constant}}}}
methods: {methods}
evaluate: {{bootstrap: 200}}
theory: {{enabled: false}}
{extra}""")
    return recipe


def test_generation_run_end_to_end(tmp_path, tiny_models, capsys):
    import json

    import datasets

    from pipeline.cli import main

    recipe = _generation_recipe(tmp_path, tiny_models, """
  - name: naive
  - {name: refine, refinement_batch: 3, curve_shots: [0, 2], curve_n: 10, prompt_only_n: 10}
  - {name: selective, shots: 2, weak_folds: 2, min_routed: 2}""")
    assert main(["run", str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "gen"
    res = json.loads((run / "results.json").read_text())
    assert "auroc" not in res["weak"] and set(res["methods"]) == {"naive", "refine", "selective"}
    # 12 epochs on gold answers teach the tiny model the mapping; one epoch at a low rate does not
    assert res["ceiling"]["accuracy"]["value"] >= 0.9 > res["weak"]["accuracy"]["value"]
    for m in res["methods"].values():
        assert set(m["pgr"]) == {"accuracy"} and 0 <= m["accuracy"]["value"] <= 1
    rows = [json.loads(x) for x in (run / "seed0" / "ceiling" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]) == {"id", "reference", "answer", "correct"}
    assert res["ceiling"]["accuracy"]["value"] == pytest.approx(sum(r["correct"] for r in rows) / 40)
    labels = datasets.load_from_disk(str(run / "seed0" / "weak" / "labels"))
    assert labels.column_names == ["id", "text", "gt_answer", "answer", "correct"]
    assert res["weak"]["transfer_label_accuracy"] == pytest.approx(sum(labels["correct"]) / len(labels))
    refine = res["methods"]["refine"]["diagnostics"]
    assert [c["shots"] for c in refine["refinement_curve"]] == [0, 2] and refine["refinement_batch"] == 3
    assert "routed_share_B" in res["methods"]["selective"]["diagnostics"]
    report = (run / "report.md").read_text()
    assert "exact match" in report and "AUROC (%)" not in report
    assert "### In-context refinement: `refine`" in report and (run / "refine_refine.png").exists()
    assert "drawn at random" in report and "class ratio" not in report
    capsys.readouterr()


def test_generation_recipe_errors_name_the_key(tmp_path, tiny_models, capsys):
    from pipeline.cli import main

    bad = _generation_recipe(tmp_path, tiny_models, "[{name: naive, calibrate: temperature}, {name: aux_conf}, "
                                                    "{name: graph_smooth}]")
    bad.write_text(bad.read_text().replace("mode: full, train: {epochs: 1", "mode: head, train: {epochs: 1")
                   .replace('template: "Review: {prompt} Sentiment:"', "template: 'Q:', checker: exactt"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "weak.mode: head trains a linear classifier" in err
    assert "aux_conf does not support task 'generation'" in err and "graph_smooth does not support" in err
    assert "methods[0].calibrate: a generation task's weak labels are answers" in err
    assert "unknown checker 'exactt' (did you mean 'exact'?)" in err and "has no {prompt} placeholder" in err
    enc = _generation_recipe(tmp_path, {"decoder": tiny_models["encoder"]}, "[{name: naive}]")
    assert main(["validate", str(enc)]) == 2
    assert "is an encoder; a generation task fine-tunes a causal language model" in capsys.readouterr().err


def test_a_registered_checker_is_listed_and_usable(capsys):
    from pipeline import answers
    from pipeline.cli import main
    from pipeline.tasks.generation import Generation

    @answers.register("first_word_test")
    def first_word(generated: str, reference: str) -> bool:
        """the first word of each text, case folded"""
        return generated.split()[:1] == reference.lower().split()[:1]

    try:
        gen = Generation(checker="first_word_test")
        assert gen.correct(["paris is", "lyon"], ["paris, France", "paris"]).tolist() == [False, False]
        assert gen.correct(["paris is"], ["Paris"]).tolist() == [True]
        assert main(["tasks"]) == 0
        out = capsys.readouterr().out
        assert "first_word_test" in out and "the first word of each text" in out and "generation" in out
    finally:
        del answers.CHECKERS["first_word_test"]


def test_a_chat_model_trains_and_answers_through_its_chat_template(tmp_path, tiny_models, capsys, monkeypatch):
    """`generation.chat: true` end to end: every SFT example and every generation prompt (weak, ceiling,
    refine's few-shot prompts) is rendered by the tokenizer's chat template, and the ceiling still learns
    the answers (training and generation render alike). The template ends a turn with its own special
    token ([SEP] here, as `<end_of_turn>` is not Gemma's EOS): the model learns to emit it and generation
    must stop there (it did not: the answers ran on to max_new_tokens). A tokenizer without a template is a
    clear error."""
    import json
    import shutil

    from pipeline import models
    from pipeline.cli import main
    from pipeline.train import sft

    chat_lm = tmp_path / "chat_lm"
    shutil.copytree(tiny_models["decoder"], chat_lm)
    tok = models.load_tokenizer(str(chat_lm))
    tok.add_special_tokens({"additional_special_tokens": ["[SEP]"]})  # in the vocabulary already (id 3)
    tok.chat_template = CHAT.replace("}}\n{% endfor %}", "}}[SEP]\n{% endfor %}")
    tok.save_pretrained(str(chat_lm))
    assert sft.end_of_turn_ids(tok) == [tok.eos_token_id, tok.convert_tokens_to_ids("[SEP]")]
    recipe = _generation_recipe(tmp_path, {"decoder": str(chat_lm)}, """
  - name: naive
  - {name: refine, refinement_batch: 3, curve_shots: [2], curve_n: 9, prompt_only_n: 9}""")
    calls, render = [], sft.render

    def spy(tokenizer, prompt, answer, chat):
        if prompt != "w2s-question":  # not end_of_turn_ids' probe
            calls.append((answer is None, chat))
        return render(tokenizer, prompt, answer, chat)
    monkeypatch.setattr(sft, "render", spy)
    assert main(["run", str(recipe), "--no-progress", "generation.chat=true"]) == 0, capsys.readouterr().err
    assert {c for c in calls} == {(True, True), (False, True)}  # generation prompts and SFT examples, all chat
    res = json.loads((tmp_path / "runs" / "gen" / "results.json").read_text())
    assert res["ceiling"]["accuracy"]["value"] >= 0.9 > res["weak"]["accuracy"]["value"]

    plain = _generation_recipe(tmp_path, tiny_models, "[naive]")
    capsys.readouterr()
    assert main(["run", str(plain), "--no-progress", "generation.chat=true", "name=plain"]) == 2
    assert "has no chat template" in capsys.readouterr().err


def test_the_end_of_turn_token_is_found_behind_whitespace_and_among_added_special_tokens(tiny_models):
    """A template may put a newline before its end-of-turn token, and the token may be an added token
    flagged special without a name in the special-tokens map (Llama 3's <|eot_id|>); a template whose
    turn ends in plain text adds nothing."""
    from tokenizers import AddedToken

    from pipeline.train.sft import end_of_turn_ids

    tok = _decoder_tokenizer(tiny_models)
    tok.add_tokens([AddedToken("<eot>", special=True)])
    eot = tok.convert_tokens_to_ids("<eot>")
    assert eot not in tok.all_special_ids
    tok.chat_template = CHAT.replace("}}\n{% endfor %}", "}}\n<eot>\n{% endfor %}")
    assert end_of_turn_ids(tok) == [tok.eos_token_id, eot]
    tok.chat_template = CHAT.replace("}}\n{% endfor %}", "}} good <eot>\n{% endfor %}")  # text first: not a turn end
    assert end_of_turn_ids(tok) == [tok.eos_token_id]
    tok.chat_template = CHAT
    assert end_of_turn_ids(tok) == [tok.eos_token_id]
