"""The interview's questions (data in prompts/interview.yaml) and how answers are read.

`next_question` asks only what the answers so far make relevant and skips what is known;
`parse_answer` reads free text such as "about 3k examples", "100k requests a day" or "85%".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from bot.core.errors import LadderError
from bot.interview.decision import FACT_KEYS, fact_problem

QUESTION_TYPES = {"text", "choice", "multi", "yesno", "number", "fraction"}
UNITS = {"count", "per_month", "ms", "billions", "gb"}


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """One interview question; `id` is the fact it fills."""

    id: str
    type: str
    text: str
    help: str
    short: str = ""
    choices: tuple[Option, ...] = ()
    unit: str | None = None
    suggestions: tuple[float, ...] = ()
    ask_when: tuple[dict[str, tuple[Any, ...]], ...] = ()

    def relevant(self, answers: dict[str, Any]) -> bool:
        """Return True when the answers so far make this question worth asking."""
        if not self.ask_when:
            return True
        return any(_matches(condition, answers) for condition in self.ask_when)

    def label_for(self, value: Any) -> str:
        """Return a human rendering of an answer to this question."""
        if value is None:
            return "skipped"
        if self.type == "yesno":
            return "yes" if value else "no"
        if self.type in {"choice", "multi"}:
            labels = {o.value: o.label for o in self.choices}
            values = value if isinstance(value, list) else [value]
            return ", ".join(labels.get(v, str(v)) for v in values) or "none"
        if self.type == "fraction":
            return f"{value:.0%}"
        if self.type == "number":
            return format_number(value, self.unit)
        return str(value)


def _matches(condition: dict[str, tuple[Any, ...]], answers: dict[str, Any]) -> bool:
    for fact, allowed in condition.items():
        value = answers.get(fact)
        if value is None:
            return False
        values = value if isinstance(value, list) else [value]
        if not any(v in allowed for v in values):
            return False
    return True


@lru_cache(maxsize=1)
def load_questions() -> tuple[Question, ...]:
    """Return the questions from prompts/interview.yaml, validated.

    Raises LadderError when the file names an unknown fact, type or unit.
    """
    raw = yaml.safe_load(resources.files("prompts").joinpath("interview.yaml").read_text(encoding="utf-8"))
    questions = []
    for item in raw["questions"]:
        qid = item["id"]
        if qid not in FACT_KEYS:
            raise LadderError(f"prompts/interview.yaml: question {qid!r} is not a fact key; use one of {FACT_KEYS}")
        if item["type"] not in QUESTION_TYPES:
            raise LadderError(f"prompts/interview.yaml: question {qid!r} has unknown type {item['type']!r}")
        if item.get("unit") is not None and item["unit"] not in UNITS:
            raise LadderError(f"prompts/interview.yaml: question {qid!r} has unknown unit {item['unit']!r}")
        questions.append(
            Question(
                id=qid,
                type=item["type"],
                text=item["text"],
                help=item.get("help", ""),
                short=item.get("short", qid.replace("_", " ")),
                choices=tuple(
                    Option(str(c["value"]), c["label"], tuple(w.lower() for w in c.get("words", [])))
                    for c in item.get("choices", [])
                ),
                unit=item.get("unit"),
                suggestions=tuple(item.get("suggestions", [])),
                ask_when=tuple(
                    {fact: tuple(values) for fact, values in cond.items()} for cond in item.get("ask_when", [])
                ),
            )
        )
    return tuple(questions)


def question(qid: str) -> Question:
    """Return the question for fact `qid`; raise LadderError naming the known ids."""
    for q in load_questions():
        if q.id == qid:
            return q
    raise LadderError(f"there is no question {qid!r}; known: {', '.join(q.id for q in load_questions())}")


def relevant_questions(answers: dict[str, Any]) -> list[Question]:
    """Return the questions the answers so far make relevant, in interview order."""
    return [q for q in load_questions() if q.relevant(answers)]


def next_question(answers: dict[str, Any]) -> Question | None:
    """Return the next relevant question without an answer (a skip counts), or None when done."""
    for q in relevant_questions(answers):
        if q.id not in answers:
            return q
    return None


def relevant_facts(answers: dict[str, Any]) -> dict[str, Any]:
    """Return the answered, non-skipped facts that are still relevant (for `advise`)."""
    facts = {}
    for q in relevant_questions(answers):
        if answers.get(q.id) is not None:
            facts[q.id] = answers[q.id]
    facts.setdefault("failure_modes", answers.get("failure_modes") or [])
    return facts


# -- reading answers ----------------------------------------------------------------------------

_YES = {"y", "yes", "yeah", "yep", "yup", "true", "sure", "of course", "we do", "we have", "correct", "absolutely"}
_NO = {"n", "no", "nope", "nah", "false", "not yet", "never", "we don't", "none", "not really"}
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
_NUMBER = re.compile(r"(\d[\d,_]*(?:\.\d+)?|\.\d+)\s*(?:(k|thousand|mn|m|million|bn|b|billion)(?![a-z]))?", re.I)
_PER = {
    "second": 30 * 24 * 3600, "sec": 30 * 24 * 3600, "minute": 30 * 24 * 60, "min": 30 * 24 * 60,
    "hour": 30 * 24, "day": 30, "daily": 30, "week": 30 / 7, "weekly": 30 / 7,
    "month": 1, "monthly": 1, "year": 1 / 12, "yearly": 1 / 12, "annually": 1 / 12,
}


def _first_number(text: str) -> tuple[float, str | None] | None:
    match = _NUMBER.search(text)
    if not match:
        return None
    value = float(match.group(1).replace(",", "").replace("_", ""))
    return value, (match.group(2) or "").lower() or None


def parse_answer(q: Question, text: str) -> Any:
    """Return the fact value that free text `text` gives for question `q`.

    Raises LadderError with an example of an answer that would work.
    """
    raw = text.strip()
    lowered = raw.lower().strip(" .!")
    if q.type == "text":
        if not raw:
            raise LadderError("the answer is empty; describe the task in a sentence")
        return raw
    if q.type == "yesno":
        if lowered in _YES or lowered.startswith(("yes", "yeah", "yep")):
            return True
        if lowered in _NO or lowered.startswith(("no ", "no,", "nope", "not ")):
            return False
        raise LadderError(f"I couldn't read {raw!r} as yes or no; answer `yes` or `no`")
    if q.type == "choice":
        found = _match_options(q, lowered)
        if len(found) == 1:
            return found[0]
        options = ", ".join(o.value for o in q.choices)
        raise LadderError(f"I couldn't match {raw!r} to one of: {options}; answer with one of them")
    if q.type == "multi":
        if lowered in {"none", "nothing", "no", "nothing yet", "-"}:
            return []
        found = _match_options(q, lowered)
        if not found:
            options = ", ".join(o.value for o in q.choices)
            raise LadderError(f"I couldn't match {raw!r} to any of: {options}; name one or more, like `format, cost`")
        return found
    if q.type == "fraction":
        parsed = _first_number(lowered)
        if parsed is None:
            raise LadderError(f"I couldn't read a score from {raw!r}; answer like `85%` or `0.85`")
        value = parsed[0]
        if "%" in lowered or 1 < value <= 100:
            value /= 100
        if not 0 <= value <= 1:
            raise LadderError(f"a score must be between 0 and 100%, got {raw!r}")
        return round(value, 4)
    value = _parse_number(q, raw, lowered)
    problem = fact_problem(q.id, value)
    if problem:  # refused and asked again, never saved
        raise LadderError(f"{q.short} {format_number(value, q.unit)} is out of range ({problem}); answer like "
                          f"{EXAMPLES[q.unit or 'count']}")
    return value


def _match_options(q: Question, lowered: str) -> list[str]:
    words = re.findall(r"[a-z0-9']+", lowered)
    found = []
    for option in q.choices:
        keys = {option.value.lower(), *option.words}
        hit = option.label.lower() == lowered or any(
            word == key or (len(key) >= 5 and word.startswith(key)) for word in words for key in keys
        )
        if hit and option.value not in found:
            found.append(option.value)
    return found


EXAMPLES = {
    "count": "`about 3k` or `3000`",
    "per_month": "`100k a day` or `2M a month`",
    "ms": "`200 ms` or `1.5 s`",
    "billions": "`7B` or `0.5B`",
    "gb": "`24 GB`",
}
# A size is the number written next to its unit: "llama 3 8B" is 8B, "RTX 4090 with 24GB" is 24 GB.
_WITH_UNIT = {
    "billions": re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(b|bn|billions?|m|mn|millions?)(?![a-z])", re.I),
    "gb": re.compile(r"(?:(?<![\w.])(\d+)\s*[x×*]\s*)?(?<![\w.])(\d+(?:\.\d+)?)\s*(gb|gib|g|tb|tib)(?![a-z])", re.I),
}
_PLAIN = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def _sized(q: Question, raw: str, lowered: str) -> float:
    """Read a model size (billions) or a memory (GB) from the number next to its unit; a lone
    number without a unit counts too. Raises LadderError when no number, or several, stand out."""
    match = _WITH_UNIT[q.unit].search(lowered)
    if match and q.unit == "billions":
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000, 4) if unit.startswith("m") else value
    if match:
        count, value, unit = match.group(1), float(match.group(2)), match.group(3)
        value *= 1000 if unit.startswith("t") else 1
        return value * int(count) if count else value  # "2x 80GB": both cards
    plain = _PLAIN.findall(lowered)
    if len(plain) == 1:
        return float(plain[0])
    what = "size" if q.unit == "billions" else "memory"
    if not plain:
        raise LadderError(f"I couldn't read a {what} from {raw!r}; answer like {EXAMPLES[q.unit]}")
    raise LadderError(f"I couldn't tell which number in {raw!r} is the {what}; answer like {EXAMPLES[q.unit]}")


def _parse_number(q: Question, raw: str, lowered: str) -> float | int:
    if q.unit in _WITH_UNIT:
        return _sized(q, raw, lowered)
    parsed = _first_number(lowered)
    if parsed is None:
        raise LadderError(f"I couldn't read a number from {raw!r}; answer like {EXAMPLES[q.unit or 'count']}")
    value, scale = parsed
    if q.unit == "ms":
        if re.search(r"\d\s*(s|sec|secs|second|seconds)\b", lowered):
            value *= 1000
        elif re.search(r"\d\s*(min|minute|minutes)\b", lowered):
            value *= 60_000
        return int(round(value))
    if scale:
        value *= _SCALE[scale]
    if q.unit == "per_month":
        for word, factor in _PER.items():
            if re.search(rf"\b{word}s?\b", lowered):
                value *= factor
                break
    if value < 0:
        raise LadderError(f"the number must not be negative, got {raw!r}")
    return int(round(value))


def format_number(value: float, unit: str | None) -> str:
    """Return `value` rendered for its unit (3000 -> 3,000; 7.0 billions -> 7B)."""
    if unit == "billions":
        return f"{value:g}B"
    if unit == "gb":
        return f"{value:g} GB"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "per_month":
        return f"{value:,.0f}/month"
    return f"{value:,.0f}"
