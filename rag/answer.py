"""Answers with numbered citations, from the base model through an OpenAI-compatible client.

The generator is passed in (`generate(messages) -> text`), so this module never knows which
server answers; with none configured the passages come back without an answer.

Small models answer faithfully only from a short context, so an answer is built in four steps:
1. facts: the sentences (or pairs of neighbouring sentences) of the retrieved passages closest
   to the question, by the project's embedder, best first, each numbered by its passage; none
   close enough means the documents don't say;
2. the model writes a one-sentence answer from those facts (prompts/rag.yaml), citing them;
3. each sentence it wrote is checked against the facts: one fact must hold most of its content
   words, every figure it states and the same negation, and its citation becomes that fact's
   passage; a citation number that matches no passage is never shown;
4. sentences no fact supports are left out, and when nothing is left the closest fact is quoted
   instead, marked as a quote: the reply never passes on what the model made up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from rag.bm25 import tokens
from rag.index import Hit

Generate = Callable[[list[dict[str, str]]], str]
Embed = Callable[[list[str]], Any]  # texts -> unit vectors, one row each
# Sent with every RAG answer: greedy (the same question gets the same answer), short, and OpenAI's
# frequency penalty on the answer's own tokens, which keeps small models from looping without
# taxing the words they copy from the facts (a repetition penalty would count the prompt too).
GENERATION = {"max_tokens": 120, "temperature": 0.0, "frequency_penalty": 0.5}
# Facts given to the model (a fact is a sentence, or two neighbouring ones). More is more context
# and more room to wander off it: given two or three, SmolLM2-135M answered from the wrong one
# about half the time on the test handbook; given one, it rephrases it or is replaced by it.
# Raise it for a larger model.
FACTS = 1
RELEVANT = 0.3  # cosine a fact needs to count (sentence-transformers scale; 0.1 for the lexical embedder)
SUPPORT = 0.5  # share of a sentence's content words one fact must hold to support it
CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# What a claim must not invent: figures, and names or codes (a capitalised word after the first,
# such as "cupboard C" for "cupboard B", or a word with digits in it).
FIGURE = re.compile(r"\d+(?:[.,]\d+)*|(?<=\s)(?!I\b)[A-Z][\w-]*|\b\w*\d\w*\b")
NEGATION = re.compile(r"\b(?:no|not|never|cannot|none|nothing|neither|nor|without)\b|n't\b", re.IGNORECASE)
SENTENCE = re.compile(r"(?<=[.!?])\s+")


@lru_cache(maxsize=1)
def template() -> dict[str, Any]:
    """Return the RAG prompt template from prompts/rag.yaml."""
    return yaml.safe_load(resources.files("prompts").joinpath("rag.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Fact:
    """One sentence of a retrieved passage, numbered by that passage (1-based), and how close
    it is to the question."""

    number: int
    text: str
    score: float


def sentences(passage: str) -> list[list[str]]:
    """Return the sentences of a passage, paragraph by paragraph: headings (a Markdown `#` line,
    or a short line of its own without closing punctuation) dropped, wrapped lines joined. A
    block of lines none of which ends a sentence is records (a table's rows): each row is a
    paragraph of its own, so a fact is one product, not the whole table."""
    body = re.sub(r"^\s*#+\s.*$", "", passage, flags=re.M)
    paragraphs = []
    blocks = []
    for block in re.split(r"\n\s*\n|\n\s*[-*]\s+", body):
        lines = [line for line in block.splitlines() if line.strip()]
        records = len(lines) > 1 and not any(line.rstrip().endswith((".", "!", "?")) for line in lines)
        blocks += lines if records else [block]
    for block in blocks:
        found = []
        for sentence in SENTENCE.split(" ".join(block.split())):
            heading = len(sentence.split()) < 6 and not sentence.rstrip().endswith((".", "!", "?", ":", ";", ")", '"'))
            if len(tokens(sentence)) >= 2 and not heading:
                found.append(sentence.strip())
        if found:
            paragraphs.append(found)
    return paragraphs


def select_facts(question: str, hits: list[Hit], embed: Embed, limit: int = FACTS,
                 relevant: float = RELEVANT) -> list[Fact]:
    """Return up to `limit` facts from `hits` closest to `question` (cosine of `embed`), best
    first; none when none reaches `relevant`. A fact is a sentence or two neighbouring ones of
    one paragraph, so "It costs 140 dollars" comes with the sentence that says what "it" is."""
    candidates = []
    for number, hit in enumerate(hits, 1):
        for paragraph in sentences(hit.text):
            candidates += [(number, text) for text in paragraph]
            candidates += [(number, f"{a} {b}") for a, b in zip(paragraph, paragraph[1:])]
    if not candidates:
        return []
    vectors = np.asarray(embed([question, *(text for _, text in candidates)]), dtype=np.float32)
    scores = vectors[1:] @ vectors[0]
    best = [int(i) for i in np.argsort(-scores)[:limit] if scores[i] >= relevant]
    return [Fact(candidates[i][0], candidates[i][1], round(float(scores[i]), 4)) for i in best]


def build_messages(question: str, facts: list[Fact]) -> list[dict[str, str]]:
    """Return chat messages asking the model to answer from numbered `facts`, after the
    template's worked examples."""
    t = template()
    messages = [{"role": "system", "content": t["system"].strip()}]
    for shot in t.get("examples") or []:
        messages += [{"role": "user", "content": t["user"].format(facts=shot["facts"].strip(), question=shot["question"])},
                     {"role": "assistant", "content": shot["answer"]}]
    listed = "\n".join(t["fact"].format(number=f.number, text=f.text) for f in facts)
    messages.append({"role": "user", "content": t["user"].format(facts=listed, question=question.strip())})
    return messages


def answer(question: str, hits: list[Hit], generate: Generate | None, embed: Embed,
           relevant: float = RELEVANT) -> dict[str, Any]:
    """Return {"answer", "sources", "note", "cited", "quoted"}: `answer` is None when no model is
    configured; `cited` lists the passage numbers the answer cites (1-based); `quoted` is True
    when the answer is the closest fact itself because nothing the model wrote held up."""
    sources = [
        {"source": h.source, "text": h.text, "score": h.score, "start_index": h.start_index,
         "page": h.page, "section": h.section}
        for h in hits
    ]
    result: dict[str, Any] = {"answer": None, "sources": sources, "note": None, "cited": [], "quoted": False}
    if generate is None:
        return {**result, "note": " ".join(template()["no_model"].split())}
    facts = select_facts(question, hits, embed, relevant=relevant)
    if not facts:
        return {**result, "answer": template()["no_answer"].strip()}
    checked = verify(generate(build_messages(question, facts)), facts, len(hits))
    if checked.cited:
        note = (f"Left out {checked.dropped} sentence(s) of the model's answer that the documents don't support."
                if checked.dropped else None)
        return {**result, "answer": checked.text, "cited": checked.cited, "note": note}
    closest = max(facts, key=lambda f: f.score)
    return {**result, "answer": _with_citation(closest.text, closest.number), "cited": [closest.number], "quoted": True,
            "note": "Quoted from the documents: the model's own answer did not match them."}


@dataclass(frozen=True)
class Checked:
    """What is left of an answer after its sentences were checked against the facts."""

    text: str
    cited: list[int]
    dropped: int


def verify(text: str, facts: list[Fact], passages: int) -> Checked:
    """Keep the sentences of `text` that a fact supports, each citing that fact's passage."""
    kept, cited, dropped = [], [], 0
    for line in drop_invalid_citations(text, passages).split("\n"):  # lines (a list) stay lines
        out = []
        for sentence in (s.strip() for s in SENTENCE.split(line) if s.strip()):
            claim = CITATION.sub("", sentence).strip()
            fact = supporting(claim, facts)
            if fact is None:
                dropped += 1 if len(tokens(claim)) >= 2 else 0  # "Sure." is filler, not a claim
                continue
            out.append(_with_citation(claim, fact.number))
            cited += [fact.number] if fact.number not in cited else []
        if out:
            kept.append(" ".join(out))
    return Checked("\n".join(kept), cited, dropped)


def supporting(claim: str, facts: list[Fact]) -> Fact | None:
    """Return the fact that best supports `claim`, or None: it must hold at least SUPPORT of the
    claim's content words (two at least), every figure, name and code the claim states, and agree
    on negation."""
    words = set(tokens(claim))
    stated = {s.lower() for s in FIGURE.findall(claim)}
    negated = bool(NEGATION.search(claim))
    best, best_share = None, 0.0
    for fact in facts:
        shared = len(words & set(tokens(fact.text)))
        share = shared / len(words) if words else 0.0
        specifics = {s.lower() for s in FIGURE.findall(fact.text)} | set(tokens(fact.text))
        if (shared >= 2 and share >= SUPPORT and stated <= specifics
                and negated == bool(NEGATION.search(fact.text)) and share > best_share):
            best, best_share = fact, share
    return best


def drop_invalid_citations(text: str, passages: int) -> str:
    """Return `text` without citation numbers outside 1..`passages` (a bracket left empty goes)."""
    def keep(match: re.Match) -> str:
        numbers = [n for n in re.split(r"\s*[,;]\s*", match.group(1)) if 1 <= int(n) <= passages]
        return " " + "".join(f"[{n}]" for n in numbers) if numbers else ""

    return CITATION.sub(keep, text).strip()


def _with_citation(sentence: str, number: int) -> str:
    """Put [number] at the end of `sentence`, before its closing punctuation."""
    body = sentence.rstrip()
    end = len(body.rstrip(".!?:;"))
    return f"{body[:end]} [{number}]{body[end:]}"
