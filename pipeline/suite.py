"""The hub benchmark suite: tasks of the weak-to-strong literature, pinned and formatted.

Every entry names a hub dataset (id, config, a pinned revision that loads without a loading script) and
the splits we use, and carries a formatter that turns one raw row, as the hub serves it, into examples:
`{"text", "label"}` for classification, `{"prompt", "chosen", "rejected"}` for preference (anthropic_hh),
`{"text": question, "label": reference answer}` for generation (gsm8k, MATH).
Formats follow openai/weak-to-strong `weak_to_strong/datasets.py` (Burns et al. 2023) and EleutherAI/w2s
`w2s/ds_registry.py`; each formatter names the one it follows.

Multiple choice becomes binary the Burns way: the row's `random.Random` (which the caller seeds per row)
draws label 1 with probability 1/2; the text then pairs the question with the correct answer (label 1)
or with one distractor drawn by `rng.choice` (label 0). Formatters draw nothing else from the rng and
never touch the global `random`, so a row's examples depend only on the row and its rng.

Revisions are commit shas, or `refs/convert/parquet` (the hub's auto-converted parquet branch) where no
public source pins one. Entries in PARQUET_BRANCH read that branch (or one of its commits): it has no
dataset card, so it serves one `default` config and `config` names a folder of it; `load_kwargs` gives
the arguments of `datasets.load_dataset` for every entry.

Torch-free and `datasets`-free: the registry is imported by the CLI and by the data stage.
"""

import numbers
import random
from dataclasses import dataclass
from typing import Callable, Optional

LM_EVAL = "lm-evaluation-harness @ 4e7e0d47f33b"  # the commit of the task YAMLs read (2026-08-21)
OPENAI_W2S = "openai/weak-to-strong weak_to_strong/datasets.py @ 6b450f2cee37"
ELEUTHER_W2S = "EleutherAI/w2s w2s/ds_registry.py @ a929af0bed9d"

ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class SuiteDataset:
    name: str  # registry key, e.g. "boolq"
    task: str  # "classification" or "preference"
    hub_id: str  # e.g. "google/boolq"
    config: Optional[str]  # hub config name (a folder of the parquet branch for PARQUET_BRANCH), or None
    revision: str  # 40-hex commit sha or "refs/convert/parquet"
    splits: dict  # our role -> hub split: {"train": ..., "test": ...}, optionally "validation"
    columns: tuple  # raw columns the formatter reads (checked against a user's local copy)
    format: Callable  # format(row: dict, rng: random.Random) -> list[dict]
    description: str  # one line for `w2s data list`; says what label 1 means
    licence: str
    citation: str
    source: str  # where hub id, revision and splits come from
    prompt: Optional[str] = None  # zero-shot template for causal LMs with a {text} placeholder
    verbalizers: Optional[tuple] = None  # (label-0 continuation, label-1 continuation)
    checker: Optional[str] = None  # generation: the answer checker (`pipeline.answers.CHECKERS`)


# ------------------------------------------------------------------------------------------------ helpers


def _text(*values) -> bool:
    """Every value is a non-empty string (a row with a missing field is dropped, not formatted as 'None')."""
    return all(isinstance(v, str) and v.strip() for v in values)


def _binary(value) -> Optional[int]:
    """0/1 from a bool or an integer 0/1; None otherwise (hub test splits mark unlabelled rows with -1)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return int(value)
    return None


def _index(value, size: int, offset: int = 0) -> Optional[int]:
    """A 0-based answer index from an int or a digit string (hellaswag, social_i_qa store strings)."""
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    value = int(value) - offset
    return value if 0 <= value < size else None


def _pick(rng: random.Random, correct: str, options) -> Optional[tuple]:
    """(label, answer) the Burns way: label 1 with p=1/2 shows `correct`, label 0 one other option.

    Options equal to the correct answer are not distractors (a duplicate would give a label-0 text
    identical to the label-1 one); a row with no distractor left gives None.
    """
    distractors = [o for o in options if _text(o) and o != correct]
    if not _text(correct) or not distractors:
        return None
    label = int(rng.random() < 0.5)
    return label, (correct if label else rng.choice(distractors))


def _lettered(row) -> Optional[tuple]:
    """(letters, texts, correct text) of an AI2-style row: {"choices": {"text", "label"}, "answerKey"}."""
    choices, key = row["choices"], row["answerKey"]
    if not isinstance(choices, dict) or not isinstance(key, str):
        return None
    letters, texts = list(choices.get("label") or []), list(choices.get("text") or [])
    key = key.strip()  # as lm-evaluation-harness's openbookqa strips it
    if key not in letters or len(letters) != len(texts):
        return None
    return letters, texts, texts[letters.index(key)]


def _one(text: str, label: int) -> list:
    return [{"text": text, "label": label}]


def _labelled(text: str, value) -> list:
    label = _binary(value)
    return [] if label is None or not _text(text) else _one(text, label)


# ------------------------------------------------------------------------------------------------ formats


def _anli(row, rng):
    # EleutherAI/w2s format_anli: entailment (label 0) against neutral or contradiction.
    gold = _index(row["label"], 3)
    if gold is None or not _text(row["premise"], row["hypothesis"]):
        return []
    text = (f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\n\n"
            "Does the premise entail the hypothesis?")
    return _one(text, int(gold == 0))


def _sentence(row, rng):
    # EleutherAI/w2s format_cola / format_sst2: the sentence alone.
    return _labelled(row["sentence"], row["label"])


def _boolq(row, rng):
    # openai/weak-to-strong format_boolq.
    if not _text(row["passage"], row["question"]):
        return []
    return _labelled(f"Passage: {row['passage']}\nQuestion: {row['question']}", row["answer"])


def _multirc(row, rng):
    # EleutherAI/w2s format_multirc: one candidate answer per row, label 1 when it is correct.
    if not _text(row["paragraph"], row["question"], row["answer"]):
        return []
    text = f'Passage:\n\n{row["paragraph"]}\n\nQ: "{row["question"]}" Is the answer "{row["answer"]}"?'
    return _labelled(text, row["label"])


def _wic(row, rng):
    # EleutherAI/w2s format_wic.
    if not _text(row["word"], row["sentence1"], row["sentence2"]):
        return []
    text = (f"Sentence 1:\n{row['sentence1']}\n\nSentence 2:\n{row['sentence2']}\n\n"
            f'Q: Does "{row["word"]}" have the same meaning in the above sentences?')
    return _labelled(text, row["label"])


def _paws(row, rng):
    # EleutherAI/w2s format_paws.
    if not _text(row["sentence1"], row["sentence2"]):
        return []
    text = f"Sent 1: {row['sentence1']}\nSent 2: {row['sentence2']}\n\nQ: Are these sentences semantically equivalent?"
    return _labelled(text, row["label"])


def _sciq_options(row) -> list:
    return [row["distractor1"], row["distractor2"], row["distractor3"]]


def _sciq(row, rng):
    # openai/weak-to-strong format_sciq.
    if not _text(row["question"]):
        return []
    picked = _pick(rng, row["correct_answer"], _sciq_options(row))
    if picked is None:
        return []
    label, answer = picked
    return _one(f"Q: {row['question']} A: {answer}", label)


def _sciq_with_support(row, rng):
    # EleutherAI/w2s format_sciq_with_support without its "Name: Bob" line and "Passage 1"/"Q1" numbering
    # (artefacts of the quirky-model setup it was copied from). Rows without a passage are dropped: the
    # entry exists to test reading the passage, and sciq covers the closed-book form.
    if not _text(row["question"], row["support"]):
        return []
    picked = _pick(rng, row["correct_answer"], _sciq_options(row))
    if picked is None:
        return []
    label, answer = picked
    return _one(f'Passage:\n{row["support"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?', label)


def _hellaswag(row, rng):
    # EleutherAI/w2s format_hellaswag. The hub's label is a string; "" marks the unlabelled test split.
    endings = list(row["endings"] or [])
    gold = _index(row["label"], len(endings))
    if gold is None or not _text(row["ctx"]):
        return []
    picked = _pick(rng, endings[gold], endings)
    if picked is None:
        return []
    label, answer = picked
    listed = "\n".join(endings)
    text = f'Context:\n{row["ctx"]}\n\nContinuations:\n\n{listed}\n\nQ: Is "{answer}" the best continuation?'
    return _one(text, label)


def _piqa(row, rng):
    # EleutherAI/w2s format_piqa: the goal with one of its two solutions.
    solutions = [row["sol1"], row["sol2"]]
    gold = _binary(row["label"])
    if gold is None or not _text(row["goal"]):
        return []
    picked = _pick(rng, solutions[gold], solutions)
    if picked is None:
        return []
    label, answer = picked
    return _one(f"Q: {row['goal']} A: {answer}", label)


def _openbookqa(row, rng):
    # EleutherAI/w2s format_openbookqa, except that label 1 shows the answer's text: the w2s code puts the
    # answer letter there (against the choices' text for label 0), which leaks the label through the form.
    lettered = _lettered(row)
    if lettered is None or not _text(row["question_stem"]):
        return []
    letters, texts, correct = lettered
    picked = _pick(rng, correct, texts)
    if picked is None:
        return []
    label, answer = picked
    listed = "\n".join(f"{a}) {t}" for a, t in zip(letters, texts))
    return _one(f"Q: {row['question_stem']}\n\nChoices:\n{listed}\n\nAnswer: {answer}", label)


def _social_i_qa(row, rng):
    # EleutherAI/w2s format_social_i_qa. The hub's label is the string "1", "2" or "3".
    answers = [row["answerA"], row["answerB"], row["answerC"]]
    gold = _index(row["label"], 3, offset=1)
    if gold is None or not _text(row["context"], row["question"]):
        return []
    picked = _pick(rng, answers[gold], answers)
    if picked is None:
        return []
    label, answer = picked
    text = (f'Context:\n{row["context"]}\n\nQuestion: "{row["question"]}"\n\n'
            f'Choices:\n{answers[0]}\n{answers[1]}\n{answers[2]}\n\nIs the answer "{answer}"?')
    return _one(text, label)


def _cosmos_qa(row, rng):
    # openai/weak-to-strong format_cosmosqa: when the true answer is "None of the above choices ." the row
    # is always a negative (shown with another answer, which is then wrong), as Burns et al. do.
    answers = [row[f"answer{i}"] for i in range(4)]
    gold = _index(row["label"], 4)
    if gold is None or not _text(row["context"], row["question"]):
        return []
    true = answers[gold]
    others = [a for a in answers if _text(a) and a != true]
    if not _text(true) or not others:
        return []
    label = 0 if "None of the above choices" in true else int(rng.random() < 0.5)
    answer = true if label else rng.choice(others)
    return _one(f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {answer}", label)


def _amazon_polarity(row, rng):
    # openai/weak-to-strong format_amazon_polarity: title and review joined by a space.
    title, content = row["title"] or "", row["content"] or ""
    return _labelled(f"{title} {content}".strip(), row["label"])


def _quartz(row, rng):
    # EleutherAI/w2s format_quartz.
    lettered = _lettered(row)
    if lettered is None or not _text(row["para"], row["question"]):
        return []
    _, texts, correct = lettered
    picked = _pick(rng, correct, texts)
    if picked is None:
        return []
    label, answer = picked
    return _one(f'Passage:\n{row["para"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?', label)


def _dream(row, rng):
    # EleutherAI/w2s format_dream: the dialogue's turns on separate lines, then the question and an answer.
    choices, turns = list(row["choice"] or []), list(row["dialogue"] or [])
    if row["answer"] not in choices or not turns or not _text(row["question"]):
        return []
    picked = _pick(rng, row["answer"], choices)
    if picked is None:
        return []
    label, answer = picked
    joined = "\n".join(turns)
    return _one(f"{joined}\n\nQ: {row['question']} A: {answer}", label)


def _mc_taco(row, rng):
    # EleutherAI/w2s format_mc_taco: one candidate answer per row, label 1 when it is plausible.
    if not _text(row["sentence"], row["question"], row["answer"]):
        return []
    text = f"{row['sentence']}\n\nGiven the above, {row['question']} Is the answer {row['answer']}?"
    return _labelled(text, row["label"])


def _ethics_commonsense(row, rng):
    # No w2s format; the scenario alone as lm-evaluation-harness's ethics_cm presents it. 1 = wrong.
    return _labelled(row["input"], row["label"])


def _ethics_deontology(row, rng):
    # EleutherAI/w2s format_ethics_deontology, its trailing "A:" moved to the prompt.
    if not _text(row["scenario"], row["excuse"]):
        return []
    text = f"Q: Is the following a morally valid excuse?\n\n{row['scenario']}\n\n{row['excuse']}"
    return _labelled(text, row["label"])


def _ethics_justice(row, rng):
    # EleutherAI/w2s format_ethics_justice, its trailing "A:" moved to the prompt.
    if not _text(row["scenario"]):
        return []
    return _labelled(f"Q: Does this statement exemplify justice?\n\n{row['scenario']}", row["label"])


def _ethics_virtue(row, rng):
    # EleutherAI/hendrycks_ethics splits the trait off the scenario (w2s read the "scenario [SEP] trait"
    # form of hendrycks/ethics), so the text names it as lm-evaluation-harness's ethics_virtue does.
    if not _text(row["scenario"], row["trait"]):
        return []
    text = (f'Sentence: {row["scenario"]}\n'
            f'Question: Does the character in this sentence exhibit the trait "{row["trait"]}"?')
    return _labelled(text, row["label"])


def _quail(row, rng):
    # EleutherAI/w2s format_quail.
    answers = list(row["answers"] or [])
    gold = _index(row["correct_answer_id"], len(answers))
    if gold is None or not _text(row["context"], row["question"]):
        return []
    picked = _pick(rng, answers[gold], answers)
    if picked is None:
        return []
    label, answer = picked
    return _one(f'Passage:\n\n{row["context"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?', label)


def _anthropic_hh(row, rng):
    """prompt = the longest shared prefix that ends at an "\\n\\nAssistant:" (inclusive); chosen and rejected
    are what follows. Dropped: no shared Assistant turn, an empty response, or two identical responses."""
    chosen, rejected = row["chosen"], row["rejected"]
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return []
    common = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        common += 1
    cut = chosen.rfind(ASSISTANT, 0, common)  # the marker must lie wholly inside the shared prefix
    if cut < 0:
        return []
    prompt = chosen[:cut + len(ASSISTANT)]
    good, bad = chosen[len(prompt):], rejected[len(prompt):]
    if not good.strip() or not bad.strip() or good == bad:
        return []
    return [{"prompt": prompt, "chosen": good, "rejected": bad}]


def _gsm8k(row, rng):
    """The question and its worked solution, which ends in GSM8K's `#### <number>` (the `gsm8k` checker
    compares that final number; training on the whole solution teaches the reasoning, as GAIR does)."""
    if not _text(row["question"], row["answer"]) or "####" not in row["answer"]:
        return []
    return [{"text": row["question"], "label": row["answer"]}]


def _math(row, rng):
    """A MATH problem and its solution, whose final answer is the last \\boxed{...} (the `boxed` checker)."""
    if not _text(row["problem"], row["solution"]) or "boxed" not in row["solution"]:
        return []
    return [{"text": row["problem"], "label": row["solution"]}]


# ------------------------------------------------------------------------------------------------ registry

YES_NO = (" No", " Yes")
LOWER_YES_NO = (" no", " yes")
QA_PROMPT = "{text}\nIs the answer correct?\nAnswer:"  # texts that pair a question with an answer and ask nothing
ASKED = "{text}\nAnswer:"  # texts that end in their own question

_PINNED = "revision pinned in public evaluation code"
GLUE = dict(hub_id="nyu-mll/glue", revision="bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
            splits={"train": "train", "test": "validation"}, columns=("sentence", "label"), format=_sentence)
SUPER_GLUE = dict(hub_id="aps/super_glue", revision="3de24cf8022e94f4ee4b9d55a6f539891524d646",
                  splits={"train": "train", "test": "validation"}, prompt=ASKED, verbalizers=YES_NO)
SCIQ = dict(hub_id="allenai/sciq", config=None, revision="2c94ad3e1aafab77146f384e23536f97a4849815",
            splits={"train": "train", "validation": "validation", "test": "test"}, licence="CC BY-NC 3.0",
            citation="Welbl, Liu, Gardner. Crowdsourcing Multiple Choice Science Questions. W-NUT 2017")
ETHICS = dict(hub_id="EleutherAI/hendrycks_ethics", revision="4ea087e182233973480bd2329176fda2201da5ef",
              splits={"train": "train", "test": "test"}, licence="MIT (hendrycks/ethics; this copy's card: other)",
              citation="Hendrycks et al. Aligning AI With Shared Human Values. ICLR 2021")


def _ethics_source(yaml: str) -> str:
    return (f"{LM_EVAL} lm_eval/tasks/hendrycks_ethics/{yaml} (EleutherAI/hendrycks_ethics, no revision; "
            "script-based, fails on datasets>=4 per issue #3171); pinned to commit 4ea087e1 of its parquet "
            "branch, seen on the hub's tree pages")


_ENTRIES = [
    SuiteDataset(
        name="anli-r2", task="classification", hub_id="facebook/anli", config=None,
        revision="8e4813d81f46d313dac7892e1c28076917cfcdf9",
        splits={"train": "train_r2", "validation": "dev_r2", "test": "test_r2"},
        columns=("premise", "hypothesis", "label"), format=_anli,
        description="ANLI round-2 premise/hypothesis pairs; 1 = entailment (0 = neutral or contradiction)",
        licence="CC BY-NC 4.0",
        citation="Nie et al. Adversarial NLI: A New Benchmark for Natural Language Understanding. ACL 2020",
        source=f"{LM_EVAL} lm_eval/tasks/anli/anli_r2.yaml (facebook/anli, train_r2/dev_r2/test_r2, no revision); "
               f"test_r2 as test as in {ELEUTHER_W2S}; {_PINNED} (two sources)",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="cola", task="classification", config="cola",
        description="CoLA sentences; 1 = grammatically acceptable",
        licence="other (GLUE card; CoLA's own terms)",
        citation="Warstadt, Singh, Bowman. Neural Network Acceptability Judgments. TACL 2019",
        source=f"{LM_EVAL} lm_eval/tasks/glue/cola/default.yaml (nyu-mll/glue cola, no revision; test is "
               f"unlabelled, validation is test); {_PINNED} (several sources)",
        prompt="{text}\nQuestion: Does this sentence make sense?\nAnswer:", verbalizers=LOWER_YES_NO, **GLUE),
    SuiteDataset(
        name="sst2", task="classification", config="sst2",
        description="SST-2 movie-review sentences; 1 = positive",
        licence="other (GLUE card; SST's own terms)",
        citation="Socher et al. Recursive Deep Models for Semantic Compositionality Over a Sentiment Treebank. "
                 "EMNLP 2013",
        source=f"{LM_EVAL} lm_eval/tasks/glue/sst2/default.yaml (nyu-mll/glue sst2, no revision; test is "
               f"unlabelled, validation is test); {_PINNED} (several sources)",
        prompt="{text}\nQuestion: Is this sentence positive or negative?\nAnswer:",
        verbalizers=(" negative", " positive"), **GLUE),
    SuiteDataset(
        name="boolq", task="classification", hub_id="google/boolq", config=None,
        revision="35b264d03638db9f4ce671b711558bf7ff0f80d5", splits={"train": "train", "test": "validation"},
        columns=("question", "answer", "passage"), format=_boolq,
        description="BoolQ yes/no questions on Wikipedia passages; 1 = the answer is yes",
        licence="CC BY-SA 3.0",
        citation="Clark et al. BoolQ: Exploring the Surprising Difficulty of Natural Yes/No Questions. NAACL 2019",
        source=f"hub id, format and validation-as-test from {OPENAI_W2S} ('boolq' is google/boolq); "
               f"{LM_EVAL} lm_eval/tasks/super_glue/boolq/default.yaml reads aps/super_glue boolq instead "
               f"(int label, not the bool answer); {_PINNED} (several sources)",
        prompt="{text}?\nAnswer:", verbalizers=LOWER_YES_NO),
    SuiteDataset(
        name="multirc", task="classification", config="multirc",
        columns=("paragraph", "question", "answer", "label"), format=_multirc,
        description="MultiRC passage/question/candidate-answer rows; 1 = the candidate is correct",
        licence="other (SuperGLUE card; MultiRC's own terms)",
        citation="Khashabi et al. Looking Beyond the Surface: A Challenge Set for Reading Comprehension over "
                 "Multiple Sentences. NAACL 2018",
        source=f"{LM_EVAL} lm_eval/tasks/super_glue/multirc/default.yaml (aps/super_glue multirc, no revision; "
               f"test is unlabelled, validation is test); {_PINNED} (several sources)",
        **SUPER_GLUE),
    SuiteDataset(
        name="wic", task="classification", config="wic",
        columns=("word", "sentence1", "sentence2", "label"), format=_wic,
        description="WiC word-in-context sentence pairs; 1 = the word has the same meaning in both",
        licence="CC BY-NC 4.0",
        citation="Pilehvar, Camacho-Collados. WiC: the Word-in-Context Dataset for Evaluating Context-Sensitive "
                 "Meaning Representations. NAACL 2019",
        source=f"{LM_EVAL} lm_eval/tasks/super_glue/wic/default.yaml (aps/super_glue wic, no revision; test is "
               f"unlabelled, validation is test); {_PINNED} (several sources)",
        **SUPER_GLUE),
    SuiteDataset(
        name="paws", task="classification", hub_id="google-research-datasets/paws", config="labeled_final",
        revision="161ece9501cf0a11f3e48bd356eaa82de46d6a09",
        splits={"train": "train", "validation": "validation", "test": "test"},
        columns=("sentence1", "sentence2", "label"), format=_paws,
        description="PAWS (labeled_final) Wikipedia sentence pairs; 1 = paraphrases",
        licence="other (PAWS release terms: free use with attribution)",
        citation="Zhang, Baldridge, He. PAWS: Paraphrase Adversaries from Word Scrambling. NAACL 2019",
        source=f"no lm-evaluation-harness YAML for English PAWS (only paws-x); config from {ELEUTHER_W2S} ('paws' "
               f"is google-research-datasets/paws); {_PINNED} (several sources)",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="sciq", task="classification",
        columns=("question", "correct_answer", "distractor1", "distractor2", "distractor3"), format=_sciq,
        description="SciQ science questions with one candidate answer (Burns binary); 1 = the correct answer",
        source=f"{LM_EVAL} lm_eval/tasks/sciq/sciq.yaml (allenai/sciq, train/validation/test, no revision); "
               f"format from {OPENAI_W2S}; {_PINNED} (several sources)",
        prompt=QA_PROMPT, verbalizers=YES_NO, **SCIQ),
    SuiteDataset(
        name="sciq_with_support", task="classification",
        columns=("question", "support", "correct_answer", "distractor1", "distractor2", "distractor3"),
        format=_sciq_with_support,
        description="SciQ questions with their support passage (rows without one dropped); 1 = the correct answer",
        source=f"as sciq; format from {ELEUTHER_W2S} format_sciq_with_support",
        prompt=ASKED, verbalizers=YES_NO, **SCIQ),
    SuiteDataset(
        name="anthropic_hh", task="preference", hub_id="Anthropic/hh-rlhf", config=None,
        revision="09be8c5bbc57cb3887f3a9732ad6aa7ec602a1fa", splits={"train": "train", "test": "test"},
        columns=("chosen", "rejected"), format=_anthropic_hh,
        description="Anthropic HH-RLHF helpful+harmless dialogues: prompt, preferred and rejected last reply",
        licence="MIT (the card: for preference modelling, not for supervised dialogue training)",
        citation="Bai et al. Training a Helpful and Harmless Assistant with Reinforcement Learning from Human "
                 "Feedback. arXiv:2204.05862, 2022",
        source=f"no lm-evaluation-harness YAML; hub id from {OPENAI_W2S}; revision = main at a public dataset "
               "card's check date (2026-08-11; files are gzipped JSON Lines, no loading script), also pinned in "
               "public code"),
    SuiteDataset(
        name="hellaswag", task="classification", hub_id="Rowan/hellaswag", config=None,
        revision="218ec52e09a7e7462a5400043bb9a69a41d06b76", splits={"train": "train", "test": "validation"},
        columns=("ctx", "endings", "label"), format=_hellaswag,
        description="HellaSwag contexts with one listed ending asked about (Burns binary); 1 = the best ending",
        licence="MIT",
        citation="Zellers et al. HellaSwag: Can a Machine Really Finish Your Sentence? ACL 2019",
        source=f"{LM_EVAL} lm_eval/tasks/hellaswag/hellaswag.yaml (Rowan/hellaswag, train/validation, no "
               f"revision; test is unlabelled); format from {ELEUTHER_W2S}; {_PINNED} (several sources)",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="piqa", task="classification", hub_id="ybisk/piqa", config=None,
        revision="142c51238b3ca2bc61e9a075913871b8b600e8e1", splits={"train": "train", "test": "validation"},
        columns=("goal", "sol1", "sol2", "label"), format=_piqa,
        description="PIQA physical goals with one of two solutions (Burns binary); 1 = the right solution",
        licence="AFL-3.0 (PIQA release; the hub card states none)",
        citation="Bisk et al. PIQA: Reasoning about Physical Commonsense in Natural Language. AAAI 2020",
        source=f"{LM_EVAL} lm_eval/tasks/piqa/piqa.yaml reads baber/piqa (a parquet copy, no revision); the "
               "original ybisk/piqa is script-based, so this pins commit 142c5123 of its parquet branch, used in "
               f"public evaluation code (several sources); format from {ELEUTHER_W2S}",
        prompt=QA_PROMPT, verbalizers=YES_NO),
    SuiteDataset(
        name="openbookqa", task="classification", hub_id="allenai/openbookqa", config="main",
        revision="388097ea7776314e93a529163e0fea805b8a6454",
        splits={"train": "train", "validation": "validation", "test": "test"},
        columns=("question_stem", "choices", "answerKey"), format=_openbookqa,
        description="OpenBookQA questions, choices listed, one answer asked about (Burns binary); 1 = correct",
        licence="unknown (the hub card states none)",
        citation="Mihaylov et al. Can a Suit of Armor Conduct Electricity? A New Dataset for Open Book Question "
                 "Answering. EMNLP 2018",
        source=f"{LM_EVAL} lm_eval/tasks/openbookqa/openbookqa.yaml (allenai/openbookqa main, no revision); format "
               f"from {ELEUTHER_W2S} (label-1 answer text fixed); {_PINNED} (several sources)",
        prompt=QA_PROMPT, verbalizers=YES_NO),
    SuiteDataset(
        name="social_i_qa", task="classification", hub_id="allenai/social_i_qa", config=None,
        revision="537a2ec8ec565adc0b70b70752893e59e024df26", splits={"train": "train", "test": "validation"},
        columns=("context", "question", "answerA", "answerB", "answerC", "label"), format=_social_i_qa,
        description="Social IQa situations, choices listed, one asked about (Burns binary); 1 = the right answer",
        licence="none stated by its authors (the hub card has no licence field)",
        citation="Sap et al. Social IQa: Commonsense Reasoning about Social Interactions. EMNLP 2019",
        source=f"{LM_EVAL} lm_eval/tasks/siqa/siqa.yaml reads lighteval/siqa (PR #3943: content-identical parquet "
               "copy, no revision); the original allenai/social_i_qa is script-based, so this pins commit 537a2ec8 "
               f"of its parquet branch, used in public code (several sources); format from {ELEUTHER_W2S}",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="cosmos_qa", task="classification", hub_id="allenai/cosmos_qa", config=None,
        revision="ed50fe83db62b355759053b1cd5eef344ee371e0", splits={"train": "train", "test": "validation"},
        columns=("context", "question", "answer0", "answer1", "answer2", "answer3", "label"), format=_cosmos_qa,
        description="Cosmos QA narratives with one candidate answer (Burns binary); 1 = the correct answer",
        licence="CC BY 4.0",
        citation="Huang et al. Cosmos QA: Machine Reading Comprehension with Contextual Commonsense Reasoning. "
                 "EMNLP 2019",
        source=f"no lm-evaluation-harness YAML; format and validation-as-test from {OPENAI_W2S}; allenai/cosmos_qa "
               "is script-based, so this pins commit ed50fe83 of its parquet branch, used in public code (two sources)",
        prompt=QA_PROMPT, verbalizers=YES_NO),
    SuiteDataset(
        name="amazon_polarity", task="classification", hub_id="fancyzhx/amazon_polarity", config="amazon_polarity",
        revision="9d9c45c18f8c3cf1b23a3c27917b60cbf28f3289", splits={"train": "train", "test": "test"},
        columns=("title", "content", "label"), format=_amazon_polarity,
        description="Amazon review polarity (title and review); 1 = positive",
        licence="Apache-2.0 (hub card)",
        citation="Zhang, Zhao, LeCun. Character-level Convolutional Networks for Text Classification. NeurIPS 2015",
        source=f"no lm-evaluation-harness YAML; format from {OPENAI_W2S} ('amazon_polarity' is "
               f"fancyzhx/amazon_polarity); {_PINNED} (several sources)",
        prompt="Review: {text}\nSentiment:", verbalizers=(" negative", " positive")),
    SuiteDataset(
        name="quartz", task="classification", hub_id="allenai/quartz", config=None,
        revision="28c1dbb56caf81799296cb17892fa73402e23464",
        splits={"train": "train", "validation": "validation", "test": "test"},
        columns=("para", "question", "choices", "answerKey"), format=_quartz,
        description="QuaRTz qualitative-relation questions with one of two answers (Burns binary); 1 = correct",
        licence="CC BY 4.0",
        citation="Tafjord et al. QuaRTz: An Open-Domain Dataset of Qualitative Relationship Questions. EMNLP 2019",
        source=f"no lm-evaluation-harness YAML; hub id and format from {ELEUTHER_W2S}; {_PINNED} (one source)",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="dream", task="classification", hub_id="dataset-org/dream", config=None,
        revision="ca4c45feaf089ecfc37579eb2c594375f70dbfd5",
        splits={"train": "train", "validation": "validation", "test": "test"},
        columns=("dialogue", "question", "choice", "answer"), format=_dream,
        description="DREAM dialogues with a question and one candidate answer (Burns binary); 1 = correct",
        licence="unknown (the hub card states none; the authors release it for non-commercial research)",
        citation="Sun et al. DREAM: A Challenge Dataset and Models for Dialogue-Based Reading Comprehension. "
                 "TACL 2019",
        source=f"no lm-evaluation-harness YAML; format from {ELEUTHER_W2S} ('dream' is dataset-org/dream); "
               "script-based, so this pins commit ca4c45fe of its parquet branch, used in public code (one source)",
        prompt=QA_PROMPT, verbalizers=YES_NO),
    SuiteDataset(
        name="mc_taco", task="classification", hub_id="CogComp/mc_taco", config=None,
        revision="refs/convert/parquet", splits={"train": "test", "test": "validation"},
        columns=("sentence", "question", "answer", "label"), format=_mc_taco,
        description="MC-TACO temporal questions with one candidate answer per row; 1 = plausible",
        licence="unknown (the hub card states none)",
        citation="Zhou et al. \"Going on a vacation\" takes longer than \"Going for a walk\": A Study of Temporal "
                 "Commonsense Understanding. EMNLP 2019",
        source=f"{LM_EVAL} lm_eval/tasks/mc_taco/default.yaml (CogComp/mc_taco, validation/test, no revision); "
               "script-based (issue #3171) and no commit of its parquet branch found in public sources, so the "
               f"branch itself; the larger test split trains and validation tests, as in {ELEUTHER_W2S}",
        prompt=ASKED, verbalizers=YES_NO),
    SuiteDataset(
        name="ethics-commonsense", task="classification", config="commonsense",
        columns=("input", "label"), format=_ethics_commonsense,
        description="ETHICS commonsense-morality scenarios; 1 = the action is wrong",
        source=_ethics_source("commonsense.yaml"),
        prompt="{text}\nQuestion: Is this wrong?\nAnswer:", verbalizers=LOWER_YES_NO, **ETHICS),
    SuiteDataset(
        name="ethics-deontology", task="classification", config="deontology",
        columns=("scenario", "excuse", "label"), format=_ethics_deontology,
        description="ETHICS deontology scenarios with an excuse; 1 = the excuse is reasonable",
        source=_ethics_source("deontology.yaml") + f"; format from {ELEUTHER_W2S}",
        prompt="{text}\n\nA:", verbalizers=YES_NO, **ETHICS),
    SuiteDataset(
        name="ethics-justice", task="classification", config="justice",
        columns=("scenario", "label"), format=_ethics_justice,
        description="ETHICS justice statements; 1 = reasonable (just)",
        source=_ethics_source("justice.yaml") + f"; format from {ELEUTHER_W2S}",
        prompt="{text}\n\nA:", verbalizers=YES_NO, **ETHICS),
    SuiteDataset(
        name="ethics-virtue", task="classification", config="virtue",
        columns=("scenario", "trait", "label"), format=_ethics_virtue,
        description="ETHICS virtue scenarios with a trait; 1 = the character exhibits the trait",
        source=_ethics_source("virtue.yaml"),
        prompt=ASKED, verbalizers=LOWER_YES_NO, **ETHICS),
    SuiteDataset(
        name="quail", task="classification", hub_id="textmachinelab/quail", config=None,
        revision="refs/convert/parquet", splits={"train": "train", "test": "validation"},
        columns=("context", "question", "answers", "correct_answer_id"), format=_quail,
        description="QuAIL passages with a question and one candidate answer (Burns binary); 1 = correct",
        licence="CC BY-NC-SA 4.0",
        citation="Rogers et al. Getting Closer to AI Complete Question Answering: A Set of Prerequisite Real "
                 "Tasks. AAAI 2020",
        source=f"no lm-evaluation-harness YAML; hub id, format and validation-as-test from {ELEUTHER_W2S}; main "
               "holds parquet since a 'Convert dataset to Parquet' commit, but no public source pins a commit, so "
               "the parquet branch (folder quail/)",
        prompt=ASKED, verbalizers=YES_NO),
]

_ENTRIES.append(SuiteDataset(
    name="gsm8k", task="generation", hub_id="openai/gsm8k", config="main",
    revision="cc7b047b6e5bb11b4f1af84efc572db110a51b3c", splits={"train": "train", "test": "test"},
    columns=("question", "answer"), format=_gsm8k, checker="gsm8k",
    description="GSM8K grade-school maths word problems; the answer is a worked solution ending in `#### n`, "
                "checked on n (generation)",
    licence="MIT", citation="Cobbe et al. Training Verifiers to Solve Math Word Problems. arXiv:2110.14168, 2021",
    source=f"{LM_EVAL} lm_eval/tasks/gsm8k/gsm8k.yaml (openai/gsm8k, config main, train / test; no revision); "
           "revision = the commit pinned in public code (parquet files, no loading script)"))
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")
_ENTRIES += [SuiteDataset(
    name=f"math-{subject}", task="generation", hub_id="EleutherAI/hendrycks_math", config=subject,
    revision="21a5633873b6a120296cce3e2df9d5550074f4a3", splits={"train": "train", "test": "test"},
    columns=("problem", "solution"), format=_math, checker="boxed",
    description=f"MATH competition problems, {subject.replace('_', ' ')}; the answer is a solution whose last "
                "\\boxed{} is checked (generation)",
    licence="MIT", citation="Hendrycks et al. Measuring Mathematical Problem Solving With the MATH Dataset. "
                            "NeurIPS 2021",
    source=f"{LM_EVAL} lm_eval/tasks/hendrycks_math/hendrycks_math.yaml (EleutherAI/hendrycks_math, one config "
           "per subject; no revision); revision = the commit pinned in public code") for subject in MATH_SUBJECTS]

SUITE: dict[str, SuiteDataset] = {e.name: e for e in _ENTRIES}

# Entries read from the parquet branch (refs/convert/parquet or one of its commits): no dataset card there,
# so the one config is `default` and a non-None `config` is a folder (`data_dir`), never a config name.
PARQUET_BRANCH = frozenset({"piqa", "social_i_qa", "cosmos_qa", "dream", "mc_taco", "quail", "ethics-commonsense",
                            "ethics-deontology", "ethics-justice", "ethics-virtue"})


def load_kwargs(entry: SuiteDataset) -> dict:
    """Keyword arguments of `datasets.load_dataset` that read `entry` at its pinned revision (add `split`)."""
    kwargs = {"path": entry.hub_id, "revision": entry.revision}
    if entry.config is not None:
        kwargs["data_dir" if entry.name in PARQUET_BRANCH else "name"] = entry.config
    return kwargs
