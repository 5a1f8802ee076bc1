"""Answer checkers for generative tasks: is a generated answer the reference answer?

A checker maps (generated text, reference text) to True / False. Each normalises both sides the same
way first, so that formatting a model may or may not reproduce (case, surrounding whitespace, a final
period, thousands separators) does not decide correctness:

- `exact`: whitespace collapsed, case folded, surrounding punctuation and quotes stripped.
- `number`: the final number of each text (GSM8K's `#### n` when present), compared numerically
  (`1,234` = `1234` = `1234.0`; `$5` = `5`).
- `gsm8k`: the number after `####` in the reference (the dataset's convention); in the generation the
  number after `####` if the model wrote one, else its last number.
- `boxed`: MATH's final `\\boxed{...}` of each text (nested braces handled), then `exact` on the inside.

Torch-free; register a new checker with `@register("name")` on a function (generated, reference) -> bool
(its docstring is what `w2s tasks` shows); a recipe then picks it with `generation.checker: name`.
"""

import re
import string
from typing import Callable, Optional

_PUNCT = string.punctuation + "“”‘’"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalise(text: str) -> str:
    """Whitespace collapsed, case folded, surrounding punctuation and quotes stripped (a minus sign in
    front of a number is kept: "-765" is not "765")."""
    t = " ".join(str(text).split()).casefold().strip(_PUNCT.replace("-", "") + " ")
    t = t.rstrip("- ")
    while t.startswith("-") and not t[1:2].isdigit() and t[1:2] != ".":
        t = t[1:].lstrip(_PUNCT.replace("-", "") + " ")
    return t


def _to_number(token: str) -> Optional[float]:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def last_number(text: str) -> Optional[float]:
    """The last number in `text` (thousands separators allowed), or None."""
    found = _NUMBER.findall(str(text))
    return _to_number(found[-1]) if found else None


def gsm8k_answer(text: str) -> Optional[float]:
    """The number after GSM8K's `####` marker, else the last number of the text."""
    text = str(text)
    if "####" in text:
        after = text.rsplit("####", 1)[1]
        found = _NUMBER.findall(after)
        if found:
            return _to_number(found[0])
    return last_number(text)


def last_boxed(text: str) -> Optional[str]:
    """The contents of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced, or None."""
    text = str(text)
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def exact(generated: str, reference: str) -> bool:
    """normalised exact match: whitespace collapsed, case folded, surrounding punctuation stripped"""
    return normalise(generated) == normalise(reference)


def number(generated: str, reference: str) -> bool:
    """the final number of each text (after `####` when there is one), compared numerically"""
    a, b = gsm8k_answer(generated), gsm8k_answer(reference)
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))


def boxed(generated: str, reference: str) -> bool:
    """MATH: the last \\boxed{...} of each text (a bare reference as it is), then normalised exact match"""
    a, b = last_boxed(generated), last_boxed(reference)
    b = reference if b is None else b  # a reference may be the bare final answer
    return a is not None and normalise(a.replace(" ", "")) == normalise(b.replace(" ", ""))


CHECKERS: dict[str, Callable[[str, str], bool]] = {"exact": exact, "number": number, "gsm8k": number,
                                                    "boxed": boxed}


def register(name: str):
    """Decorator adding a checker (generated, reference) -> bool to CHECKERS under `name`."""
    def add(fn: Callable[[str, str], bool]):
        CHECKERS[name] = fn
        return fn
    return add


def check(name: str, generated: list[str], references: list[str]) -> list[bool]:
    """Correctness of each generated answer against its reference, by the checker `name`."""
    fn = CHECKERS[name]
    return [bool(fn(g, r)) for g, r in zip(generated, references)]
