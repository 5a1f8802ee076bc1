"""Synthetic rows in the raw schema of every `pipeline.suite` entry, and local copies written from them.

Column names and Python types are the hub's (booleans, ints, string labels, lists, structs as dicts),
keyed by the hub split names the entry uses. Labels and correct answers vary so that a formatted sample
holds both classes; the texts carry no signal. Answers are distinct tokens ("right3x", "wrong3b") that
never occur elsewhere in a row, so a test can tell from a text which candidate it shows.
"""

import json
import random
from pathlib import Path

from pipeline.suite import SUITE

WORDS = "the a cat dog river stone bright quiet walks sees finds under over near house field song".split()


def _words(rng: random.Random, k: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(k))


def _answers(i: int, k: int) -> tuple[str, list]:
    return f"right{i}x", [f"wrong{i}{chr(97 + j)}" for j in range(k - 1)]


def _placed(rng: random.Random, i: int, k: int) -> tuple[list, int]:
    """k candidate answers with the correct one at a random position: (options, its index)."""
    correct, wrong = _answers(i, k)
    gold = rng.randrange(k)
    return wrong[:gold] + [correct] + wrong[gold:], gold


def _anli(rng, i):
    return {"uid": f"u{i}", "premise": _words(rng), "hypothesis": _words(rng), "label": i % 3,
            "reason": _words(rng, 3)}


def _glue(rng, i):
    return {"sentence": _words(rng), "label": i % 2, "idx": i}


def _boolq(rng, i):
    return {"question": _words(rng), "answer": bool(i % 2), "passage": _words(rng, 12)}


def _multirc(rng, i):
    return {"paragraph": _words(rng, 12), "question": _words(rng), "answer": _words(rng, 3),
            "idx": {"paragraph": i // 4, "question": i // 2, "answer": i}, "label": i % 2}


def _wic(rng, i):
    return {"word": "stone", "sentence1": "a stone " + _words(rng), "sentence2": "the stone " + _words(rng),
            "start1": 2, "start2": 4, "end1": 7, "end2": 9, "idx": i, "label": i % 2}


def _paws(rng, i):
    return {"id": i + 1, "sentence1": _words(rng), "sentence2": _words(rng), "label": i % 2}


def _sciq(rng, i):
    correct, wrong = _answers(i, 4)
    # Every 8th row has no passage, as some hub rows do (sciq_with_support drops them).
    support = "" if i % 8 == 7 else _words(rng, 12)
    return {"question": _words(rng) + "?", "distractor3": wrong[2], "distractor1": wrong[0],
            "distractor2": wrong[1], "correct_answer": correct, "support": support}


def _hh(rng, i):
    turns = "".join(f"\n\nHuman: {_words(rng)}\n\nAssistant: {_words(rng)}" for _ in range(i % 3))
    prompt = f"{turns}\n\nHuman: {_words(rng)}?\n\nAssistant:"
    return {"chosen": f"{prompt} good reply {i} {_words(rng)}", "rejected": f"{prompt} bad reply {i} {_words(rng)}"}


def _hellaswag(rng, i):
    endings, gold = _placed(rng, i, 4)
    ctx_a, ctx_b = _words(rng), _words(rng, 3)
    return {"ind": i, "activity_label": "Walking", "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}",
            "endings": endings, "source_id": f"s{i}", "split": "train", "split_type": "indomain", "label": str(gold)}


def _piqa(rng, i):
    (a, b), gold = _placed(rng, i, 2)
    return {"goal": _words(rng), "sol1": a, "sol2": b, "label": gold}


def _openbookqa(rng, i):
    texts, gold = _placed(rng, i, 4)
    return {"id": f"q{i}", "question_stem": _words(rng), "choices": {"text": texts, "label": list("ABCD")},
            "answerKey": "ABCD"[gold]}


def _social_i_qa(rng, i):
    (a, b, c), gold = _placed(rng, i, 3)
    return {"context": _words(rng, 10), "question": _words(rng) + "?", "answerA": a, "answerB": b, "answerC": c,
            "label": str(gold + 1)}


def _cosmos_qa(rng, i):
    answers, gold = _placed(rng, i, 4)
    return {"id": f"c{i}", "context": _words(rng, 12), "question": _words(rng) + "?",
            **{f"answer{j}": a for j, a in enumerate(answers)}, "label": gold}


def _amazon(rng, i):
    return {"label": i % 2, "title": _words(rng, 3), "content": _words(rng, 12)}


def _quartz(rng, i):
    texts, gold = _placed(rng, i, 2)
    return {"id": f"z{i}", "question": _words(rng) + "?", "choices": {"text": texts, "label": ["A", "B"]},
            "answerKey": "AB"[gold], "para": _words(rng, 12), "para_id": f"p{i}"}


def _dream(rng, i):
    choice, gold = _placed(rng, i, 3)
    return {"id": i, "dialogue_id": f"d{i}", "dialogue": [f"M: {_words(rng)}", f"W: {_words(rng)}"],
            "question": _words(rng) + "?", "choice": choice, "answer": choice[gold]}


def _mc_taco(rng, i):
    return {"sentence": _words(rng, 10), "question": _words(rng) + "?", "answer": _words(rng, 2), "label": i % 2,
            "category": i % 5}


def _ethics_commonsense(rng, i):
    return {"label": i % 2, "input": _words(rng, 10), "is_short": bool(i % 3), "edited": False}


def _ethics_deontology(rng, i):
    return {"group_id": i // 4, "label": i % 2, "scenario": _words(rng), "excuse": _words(rng)}


def _ethics_justice(rng, i):
    return {"group_id": i // 4, "label": i % 2, "scenario": _words(rng, 10)}


def _ethics_virtue(rng, i):
    return {"group_id": i // 5, "label": i % 2, "scenario": _words(rng, 10), "trait": rng.choice(["kind", "rude"])}


def _quail(rng, i):
    answers, gold = _placed(rng, i, 4)
    return {"id": f"a{i}", "context_id": f"c{i // 4}", "question_id": f"q{i}", "domain": "fiction",
            "context": _words(rng, 12), "question": _words(rng) + "?", "question_type": "Causality",
            "answers": answers, "correct_answer_id": gold}


def _gsm8k(rng, i):
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    return {"question": f"{_words(rng)} has {a} and gets {b} more; how many?",
            "answer": f"It has {a} + {b} = <<{a}+{b}={a + b}>>{a + b}.\n#### {a + b}"}


def _math(rng, i):
    a = rng.randint(2, 40)
    return {"problem": f"{_words(rng)}: what is ${a} \\cdot 2$?", "level": f"Level {1 + i % 5}", "type": "Algebra",
            "solution": f"Doubling gives $\\boxed{{{2 * a}}}$."}


ROWS = {
    "anli-r2": _anli, "cola": _glue, "sst2": _glue, "boolq": _boolq, "multirc": _multirc, "wic": _wic,
    "paws": _paws, "sciq": _sciq, "sciq_with_support": _sciq, "anthropic_hh": _hh, "hellaswag": _hellaswag,
    "piqa": _piqa, "openbookqa": _openbookqa, "social_i_qa": _social_i_qa, "cosmos_qa": _cosmos_qa,
    "amazon_polarity": _amazon, "quartz": _quartz, "dream": _dream, "mc_taco": _mc_taco,
    "ethics-commonsense": _ethics_commonsense, "ethics-deontology": _ethics_deontology,
    "ethics-justice": _ethics_justice, "ethics-virtue": _ethics_virtue, "quail": _quail, "gsm8k": _gsm8k,
    **{name: _math for name in SUITE if name.startswith("math-")},
}


def _ai2(row) -> tuple[str, list]:
    texts, letters = row["choices"]["text"], row["choices"]["label"]
    return texts[letters.index(row["answerKey"])], texts


# Multiple-choice entries: row -> (correct answer, every candidate). A formatted text shows the correct
# one when its label is 1, a distractor when 0.
ANSWERS = {
    "sciq": lambda r: (r["correct_answer"],
                       [r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]]),
    "hellaswag": lambda r: (r["endings"][int(r["label"])], r["endings"]),
    "piqa": lambda r: ([r["sol1"], r["sol2"]][r["label"]], [r["sol1"], r["sol2"]]),
    "openbookqa": _ai2,
    "social_i_qa": lambda r: ([r["answerA"], r["answerB"], r["answerC"]][int(r["label"]) - 1],
                              [r["answerA"], r["answerB"], r["answerC"]]),
    "cosmos_qa": lambda r: (r[f"answer{r['label']}"], [r[f"answer{j}"] for j in range(4)]),
    "quartz": _ai2,
    "dream": lambda r: (r["answer"], r["choice"]),
    "quail": lambda r: (r["answers"][r["correct_answer_id"]], r["answers"]),
}
ANSWERS["sciq_with_support"] = ANSWERS["sciq"]


def fixture_rows(name: str, n: int = 40, seed: int = 0) -> dict[str, list[dict]]:
    """{hub split: n synthetic rows} for the splits SUITE[name] uses."""
    make = ROWS[name]
    out = {}
    for split in dict.fromkeys(SUITE[name].splits.values()):
        rng = random.Random(f"{name}/{split}/{seed}")
        out[split] = [make(rng, i) for i in range(n)]
    return out


def write_local_copy(name: str, folder, kind: str = "parquet", n: int = 40, seed: int = 0) -> Path:
    """The fixture rows of `name` as a local copy in `folder`: a `DatasetDict.save_to_disk` folder ("disk"),
    or one `<split>.parquet` / `<split>.jsonl` file per hub split ("parquet", "jsonl")."""
    import datasets

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = fixture_rows(name, n, seed)
    if kind == "disk":
        datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()}).save_to_disk(str(folder))
    elif kind == "parquet":
        for split, r in rows.items():
            datasets.Dataset.from_list(r).to_parquet(str(folder / f"{split}.parquet"))
    elif kind == "jsonl":
        for split, r in rows.items():
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in r))
    else:
        raise ValueError(f"kind must be disk, parquet or jsonl, not {kind!r}")
    return folder
