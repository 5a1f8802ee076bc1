"""The hub benchmark suite (`pipeline.suite`): registry fields, every formatter on rows in its dataset's
raw schema, and hand-checked outputs of three formatters. No hub access."""

import json
import random
import re

import pytest
from suite_fixtures import ANSWERS, fixture_rows, write_local_copy

from pipeline.answers import check
from pipeline.suite import PARQUET_BRANCH, SUITE, SuiteDataset, load_kwargs

NAMES = sorted(SUITE)
# Rows a formatter drops on purpose: sciq_with_support needs a passage.
DROPPED = {"sciq_with_support": lambda row: not row["support"].strip()}


class Fixed(random.Random):
    """An rng whose draws are set by hand: random() returns `u`, choice() the item at `pick`."""

    def __init__(self, u: float, pick: int = 0):
        super().__init__(0)
        self.u, self.pick = u, pick

    def random(self):
        return self.u

    def choice(self, seq):
        return seq[self.pick]


def _rng(name, split, i):
    return random.Random(f"{name}/{split}/{i}")  # seeded per row, as the data stage does


def _formatted(name):
    """[(split, row, examples)] over the entry's fixture."""
    entry = SUITE[name]
    return [(split, row, entry.format(row, _rng(name, split, i)))
            for split, rows in fixture_rows(name).items() for i, row in enumerate(rows)]


def test_registry_size_and_keys():
    assert len(SUITE) >= 16
    assert "anthropic_hh" in SUITE and SUITE["anthropic_hh"].task == "preference"
    assert all(isinstance(e, SuiteDataset) and key == e.name for key, e in SUITE.items())
    assert PARQUET_BRANCH <= set(SUITE)


@pytest.mark.parametrize("name", NAMES)
def test_entry_fields(name):
    e = SUITE[name]
    assert e.task in ("classification", "preference", "generation")
    assert (e.checker is not None) == (e.task == "generation")
    assert re.fullmatch(r"[0-9a-f]{40}", e.revision) or e.revision == "refs/convert/parquet"
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", e.hub_id)
    assert e.config is None or (isinstance(e.config, str) and e.config)
    assert {"train", "test"} <= set(e.splits) <= {"train", "validation", "test"}
    assert all(isinstance(s, str) and s for s in e.splits.values()) and e.splits["train"] != e.splits["test"]
    assert e.columns and all(isinstance(c, str) and c for c in e.columns)
    assert callable(e.format)
    for text in (e.description, e.licence, e.citation, e.source):
        assert isinstance(text, str) and text.strip()
    if e.prompt is not None:
        assert e.task == "classification" and "{text}" in e.prompt
        e.prompt.format(text="x")  # no other placeholder or stray brace
    if e.verbalizers is not None:
        assert len(e.verbalizers) == 2 and all(isinstance(v, str) and v for v in e.verbalizers)
        assert e.verbalizers[0] != e.verbalizers[1]
    # Every classification entry can prompt a causal model as it is; a preference entry has nothing to verbalize.
    assert (e.prompt is not None and e.verbalizers is not None) == (e.task == "classification")


@pytest.mark.parametrize("name", NAMES)
def test_load_kwargs(name):
    e = SUITE[name]
    kw = load_kwargs(e)
    assert kw["path"] == e.hub_id and kw["revision"] == e.revision
    folder = "data_dir" if name in PARQUET_BRANCH else "name"
    assert kw.get(folder) == e.config and ("data_dir" if folder == "name" else "name") not in kw


@pytest.mark.parametrize("name", NAMES)
def test_fixture_has_the_columns_and_splits(name):
    e = SUITE[name]
    rows = fixture_rows(name)
    assert set(rows) == set(e.splits.values())
    for split_rows in rows.values():
        assert split_rows and all(set(e.columns) <= set(r) for r in split_rows)


@pytest.mark.parametrize("name", NAMES)
def test_formatter_shapes_and_both_labels(name):
    e = SUITE[name]
    labels = []
    for _, row, examples in _formatted(name):
        dropped = DROPPED.get(name, lambda r: False)(row)
        assert len(examples) == (0 if dropped else 1)
        for ex in examples:
            if e.task == "classification":
                assert set(ex) == {"text", "label"}
                assert isinstance(ex["text"], str) and ex["text"].strip()
                assert ex["label"] in (0, 1) and type(ex["label"]) is int
                labels.append(ex["label"])
            elif e.task == "generation":
                assert set(ex) == {"text", "label"}
                assert all(isinstance(ex[k], str) and ex[k].strip() for k in ex)
                assert check(e.checker, [ex["label"]], [ex["label"]]) == [True]  # its checker reads the answer
            else:
                assert set(ex) == {"prompt", "chosen", "rejected"}
                assert all(isinstance(ex[k], str) and ex[k].strip() for k in ex)
                assert ex["chosen"] != ex["rejected"]
    if e.task == "classification":
        assert set(labels) == {0, 1}


@pytest.mark.parametrize("name", NAMES)
def test_formatter_is_deterministic_and_leaves_the_global_rng(name):
    e = SUITE[name]
    for split, rows in fixture_rows(name).items():
        for i, row in enumerate(rows[:10]):
            random.seed(123)
            state = random.getstate()
            first = e.format(row, _rng(name, split, i))
            assert random.getstate() == state
            assert e.format(dict(row), _rng(name, split, i)) == first


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_multiple_choice_shows_the_correct_answer_iff_label_1(name):
    # The shown candidate is the one that occurs most often: once where the text asks about it, plus
    # once in a listing of all choices (hellaswag, openbookqa, social_i_qa) that shows every candidate.
    assert name in SUITE
    for _, row, examples in _formatted(name):
        correct, candidates = ANSWERS[name](row)
        for ex in examples:
            counts = {c: ex["text"].count(c) for c in candidates}
            top = max(counts.values())
            shown = [c for c, k in counts.items() if k == top]
            assert top >= 1 and len(shown) == 1, (ex["text"], counts)
            assert (shown[0] == correct) == (ex["label"] == 1)


def test_label_column_entries_are_the_rest():
    mc = set(ANSWERS)
    for name, e in SUITE.items():
        if e.task == "classification" and name not in mc:
            assert "label" in e.columns or "answer" in e.columns


# ------------------------------------------------------------------------------------- hand-checked rows


def test_boolq_literal():
    f = SUITE["boolq"].format
    row = {"question": "is the sky blue", "answer": True, "passage": "The sky is blue on clear days."}
    assert f(row, random.Random(0)) == [
        {"text": "Passage: The sky is blue on clear days.\nQuestion: is the sky blue", "label": 1}]
    assert f({**row, "answer": False}, random.Random(0))[0]["label"] == 0
    assert f({**row, "passage": None}, random.Random(0)) == []
    assert SUITE["boolq"].prompt.format(text="T") == "T?\nAnswer:"


def test_sciq_literal():
    f = SUITE["sciq"].format
    row = {"question": "What gas do plants absorb?", "correct_answer": "carbon dioxide",
           "distractor1": "oxygen", "distractor2": "helium", "distractor3": "neon", "support": "Plants use CO2."}
    assert f(row, Fixed(0.2)) == [{"text": "Q: What gas do plants absorb? A: carbon dioxide", "label": 1}]
    assert f(row, Fixed(0.7, pick=1)) == [{"text": "Q: What gas do plants absorb? A: helium", "label": 0}]
    # A distractor equal to the correct answer is not one: label 0 never shows the correct answer.
    dup = {**row, "distractor1": "carbon dioxide"}
    assert f(dup, Fixed(0.7, pick=0)) == [{"text": "Q: What gas do plants absorb? A: helium", "label": 0}]
    assert SUITE["sciq_with_support"].format(row, Fixed(0.2)) == [
        {"text": 'Passage:\nPlants use CO2.\n\nQ: "What gas do plants absorb?" Is the answer "carbon dioxide"?',
         "label": 1}]
    assert SUITE["sciq_with_support"].format({**row, "support": ""}, Fixed(0.2)) == []


def test_sciq_draws_label_then_distractor_from_the_row_rng():
    f = SUITE["sciq"].format
    row = {"question": "Q?", "correct_answer": "c", "distractor1": "d1", "distractor2": "d2", "distractor3": "d3",
           "support": ""}
    for seed in range(20):
        ref = random.Random(seed)
        label = int(ref.random() < 0.5)
        answer = "c" if label else ref.choice(["d1", "d2", "d3"])
        assert f(row, random.Random(seed)) == [{"text": f"Q: Q? A: {answer}", "label": label}]


def test_anthropic_hh_literal():
    f = SUITE["anthropic_hh"].format
    shared = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant:"
    row = {"chosen": shared + " Why did the chicken cross the road?", "rejected": shared + " No."}
    assert f(row, random.Random(0)) == [
        {"prompt": shared, "chosen": " Why did the chicken cross the road?", "rejected": " No."}]
    # Responses that begin alike still split at the last shared Assistant turn, not mid-reply.
    alike = {"chosen": shared + " Sure, here is one.", "rejected": shared + " Sure thing."}
    assert f(alike, random.Random(0)) == [
        {"prompt": shared, "chosen": " Sure, here is one.", "rejected": " Sure thing."}]
    # Dialogues that part before the last turn: the prompt ends at the last Assistant turn both share.
    early = {"chosen": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D",
             "rejected": "\n\nHuman: A\n\nAssistant: X\n\nHuman: C\n\nAssistant: D"}
    assert f(early, random.Random(0)) == [{"prompt": "\n\nHuman: A\n\nAssistant:",
                                           "chosen": " B\n\nHuman: C\n\nAssistant: D",
                                           "rejected": " X\n\nHuman: C\n\nAssistant: D"}]
    assert f({"chosen": shared + " Same.", "rejected": shared + " Same."}, random.Random(0)) == []
    assert f({"chosen": "\n\nHuman: A", "rejected": "\n\nHuman: B"}, random.Random(0)) == []
    assert f({"chosen": shared + " Text.", "rejected": shared}, random.Random(0)) == []  # an empty response


@pytest.mark.parametrize("name,row", [
    ("cola", {"sentence": "x", "label": -1, "idx": 0}),
    ("anli-r2", {"uid": "u", "premise": "p", "hypothesis": "h", "label": -1, "reason": ""}),
    ("hellaswag", {"ctx": "c", "endings": ["a", "b", "c", "d"], "label": ""}),
    ("piqa", {"goal": "g", "sol1": "a", "sol2": "b", "label": -1}),
    ("cosmos_qa", {"context": "c", "question": "q", "answer0": "a", "answer1": "b", "answer2": "c", "answer3": "d",
                   "label": -1}),
    ("openbookqa", {"question_stem": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}),
    ("social_i_qa", {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", "label": "4"}),
])
def test_unlabelled_rows_are_dropped(name, row):
    assert SUITE[name].format(row, random.Random(0)) == []


def test_cosmos_qa_none_of_the_above_is_always_negative():
    f = SUITE["cosmos_qa"].format
    row = {"context": "c", "question": "q", "answer0": "a", "answer1": "b", "answer2": "c",
           "answer3": "None of the above choices .", "label": 3}
    assert all(f(row, random.Random(s))[0]["label"] == 0 for s in range(10))


def test_string_labels_map_explicitly():
    hs = {"ctx": "c", "endings": ["e0", "e1", "e2", "e3"], "label": "2"}
    assert SUITE["hellaswag"].format(hs, Fixed(0.1))[0]["text"].endswith('Is "e2" the best continuation?')
    siqa = {"context": "c", "question": "q", "answerA": "a1", "answerB": "b1", "answerC": "c1", "label": "1"}
    assert SUITE["social_i_qa"].format(siqa, Fixed(0.1))[0]["text"].endswith('Is the answer "a1"?')
    assert SUITE["anli-r2"].format({"premise": "p", "hypothesis": "h", "label": 0}, Fixed(0.9))[0]["label"] == 1
    assert SUITE["anli-r2"].format({"premise": "p", "hypothesis": "h", "label": 2}, Fixed(0.1))[0]["label"] == 0


@pytest.mark.parametrize("kind", ["disk", "parquet", "jsonl"])
@pytest.mark.parametrize("name", ["openbookqa", "hellaswag", "anthropic_hh", "anli-r2"])
def test_local_copy_keeps_the_schema(tmp_path, name, kind):
    import datasets

    folder = write_local_copy(name, tmp_path / name, kind)
    rows = fixture_rows(name)
    for split, expected in rows.items():
        if kind == "disk":
            got = datasets.load_from_disk(str(folder))[split].to_list()
        elif kind == "parquet":
            got = datasets.Dataset.from_parquet(str(folder / f"{split}.parquet")).to_list()
        else:
            got = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]
        assert got == expected
        f = SUITE[name].format
        assert [f(r, _rng(name, split, i)) for i, r in enumerate(got)] == \
               [f(r, _rng(name, split, i)) for i, r in enumerate(expected)]
