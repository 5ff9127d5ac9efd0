"""Held-out evaluation of variants: did climbing the ladder pay off, and what did it cost?

Per variant: exact match, token F1, ROUGE-L, JSON validity (and schema compliance with a JSON
Schema), latency p50/p95 and output tokens, plus a forgetting check: the score on a small
general set relative to base, flagged when it drops more than 5% (seed 004).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bot.arena.battles import Arena, adapter_of
from bot.core.errors import LadderError
from trainer.formats import detect_format, iter_jsonl, read_text_file
from trainer.formats import normalise as as_example

FORGETTING_DROP = 0.05  # seed 004: more than 5% below base on general tasks means overtraining


def answer_cap(reference: str) -> int:
    """Return the most tokens worth generating against `reference`: four tokens per reference
    word and some room (32 to 256). A longer answer cannot match it, and on a CPU waiting for one
    costs seconds per item."""
    return max(32, min(256, 4 * len(reference.split()) + 16))


def normalise(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse spaces (SQuAD-style)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal."""
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over normalised tokens."""
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common subsequence of normalised tokens."""
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    previous = [0] * (len(ref) + 1)
    for p in pred:
        current = [0]
        for j, r in enumerate(ref, 1):
            current.append(previous[j - 1] + 1 if p == r else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def json_checks(prediction: str, schema: dict | None) -> tuple[float, float | None]:
    """Return (valid JSON, schema compliant or None without a schema)."""
    try:
        value = json.loads(prediction)
    except (json.JSONDecodeError, TypeError):
        return 0.0, 0.0 if schema else None
    if schema is None:
        return 1.0, None
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return 1.0, 0.0
    return 1.0, 1.0


def load_items(path: Path) -> list[dict[str, Any]]:
    """Return eval items {prompt, reference, history} from JSONL.

    Lines in any training format (Alpaca with instruction + input, ShareGPT, OpenAI chat,
    prompt/completion) are read exactly as for training: the final answer is the reference, the
    last user turn the prompt, earlier turns the history. Plain {prompt|question|input,
    reference|answer|output} lines work too. Raises LadderError naming the first bad line.
    """
    text = read_text_file(path, "eval file", "JSONL")
    items = []
    for number, row in iter_jsonl(text, str(path)):
        if not isinstance(row, dict):
            raise LadderError(f"{path} line {number} is not a JSON object")
        fmt = detect_format(row)
        if fmt is not None:
            try:
                items.append(_item(as_example(row, fmt, number).messages))
            except ValueError as exc:
                raise LadderError(f"{path} line {number}: {exc}") from None
            continue
        prompt = next((row[k] for k in ("prompt", "question", "input") if isinstance(row.get(k), str)), None)
        reference = next((row[k] for k in ("reference", "answer", "output") if isinstance(row.get(k), str)), None)
        if prompt is None or reference is None:
            raise LadderError(f"{path} line {number} needs a prompt (prompt/question) and a reference (reference/answer), "
                              "or a training-format record (Alpaca, ShareGPT, chat messages, prompt/completion)")
        items.append({"prompt": prompt, "reference": reference, "history": []})
    if not items:
        raise LadderError(f"{path} has no items; add lines like {{\"prompt\": \"...\", \"reference\": \"...\"}}")
    return items


def _item(messages: list[dict[str, str]]) -> dict[str, Any]:
    """An eval item from a training example's messages: the final answer, the last user turn
    before it, and every turn before that."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return {"prompt": messages[last_user]["content"], "reference": messages[-1]["content"],
            "history": messages[:last_user]}


def load_schema(path: Path) -> dict:
    """Return the JSON Schema in `path`; raise LadderError when it is unreadable or not a schema."""
    import jsonschema

    try:
        schema = json.loads(read_text_file(path, "JSON Schema", "JSON"))
    except json.JSONDecodeError as exc:
        raise LadderError(f"the JSON Schema {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the JSON") from None
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise LadderError(f"{path} is not a valid JSON Schema ({exc.message}); fix it or leave it out") from None
    return schema


def general_items(path: Path | None) -> list[dict[str, str]]:
    """Return the general set for the forgetting check: a file, or the built-in sample."""
    if path is not None:
        return load_items(path)
    data = yaml.safe_load(resources.files("prompts").joinpath("general_eval.yaml").read_text(encoding="utf-8"))
    return data["items"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def field_accuracy(prediction: str, reference: str) -> float | None:
    """Return the share of the reference's fields the prediction gets exactly right, when the
    reference is a JSON object (None otherwise): a triage record with the right category and
    priority but a wrong order id scores 2/3 where exact match gives 0."""
    try:
        expected = json.loads(reference)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(expected, dict) or not expected:
        return None
    try:
        got = json.loads(prediction)
    except (json.JSONDecodeError, TypeError):
        return 0.0
    if not isinstance(got, dict):
        return 0.0
    return sum(1 for key, value in expected.items() if key in got and got[key] == value) / len(expected)


def score(answers: list[Any], items: list[dict[str, str]], schema: dict | None) -> dict[str, Any]:
    """Return the metrics of one variant's answers against the references."""
    n = len(items)
    valid, compliant = zip(*(json_checks(a.text, schema) for a in answers), strict=True)
    latencies = [a.latency_ms for a in answers]
    per_field = [field_accuracy(a.text, it["reference"]) for a, it in zip(answers, items, strict=True)]
    fields = [f for f in per_field if f is not None]
    exact = [exact_match(a.text, it["reference"]) for a, it in zip(answers, items, strict=True)]
    return {
        "exact_match": round(sum(exact_match(a.text, it["reference"]) for a, it in zip(answers, items, strict=True)) / n, 4),
        "token_f1": round(sum(token_f1(a.text, it["reference"]) for a, it in zip(answers, items, strict=True)) / n, 4),
        "rouge_l": round(sum(rouge_l(a.text, it["reference"]) for a, it in zip(answers, items, strict=True)) / n, 4),
        "json_valid": round(sum(valid) / n, 4),
        "schema_compliant": round(sum(compliant) / n, 4) if schema else None,
        # over the items whose reference is a JSON object; None when none is
        "field_accuracy": round(sum(fields) / len(fields), 4) if fields else None,
        "latency_p50_ms": round(_percentile(latencies, 0.5), 1),
        "latency_p95_ms": round(_percentile(latencies, 0.95), 1),
        "output_tokens": round(sum(a.completion_tokens for a in answers) / n, 1),
        # each item's scores in item order, for paired bootstrap intervals (the report card, the gate)
        "per_item": {"exact_match": [float(e) for e in exact], "field_accuracy": per_field,
                     "schema_compliant": [float(c) for c in compliant] if schema else None},
    }


def evaluate(arena: Arena, project: dict[str, Any], items: list[dict[str, str]], variants: list[str],
             schema: dict | None = None, general: list[dict[str, str]] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Return per-variant metrics on `items` and, for adapters, the forgetting check."""
    general = general if general is not None else general_items(None)
    # Forgetting is an adapter's risk: base and each adapter answer the general set, without
    # retrieval; with no adapter among the variants there is nothing to check.
    adapters = sorted({f"lora:{name}" for v in variants if (name := adapter_of(v))})
    models = ["base", *adapters] if adapters else []
    total = len(items) * len(variants) + len(general) * len(models)
    done = 0
    general_scores: dict[str, float] = {}

    def run(variant: str, batch: list[dict[str, Any]]) -> list[Any]:
        """One variant's answers to `batch`, a server batch at a time, ticking the progress."""
        nonlocal done
        capped = [{**it, "max_tokens": answer_cap(it["reference"])} for it in batch]
        answered: list[Any] = [None] * len(batch)
        for index, answer in arena.answer_each(project, variant, capped, arena.settings.max_batch):
            answered[index] = answer
            done += 1
            if on_progress:
                on_progress(done, total)
        return answered

    # One variant at a time: its answers fill whole batches that end together.
    results = {v: score(run(v, items), items, schema) for v in variants}
    for model in models:
        general_answers = run(model, general)
        general_scores[model] = round(sum(token_f1(a.text, it["reference"])
                                          for a, it in zip(general_answers, general, strict=True)) / len(general), 4)
    forgetting = {}
    for model in models[1:]:
        base = general_scores["base"]
        relative = (general_scores[model] - base) / base if base else 0.0
        forgetting[model] = {"general_f1": general_scores[model], "base_general_f1": base,
                             "relative_change": round(relative, 4), "flagged": relative < -FORGETTING_DROP}
    return {"project": project["name"], "items": len(items), "variants": results,
            "general_set_size": len(general) if models else 0, "forgetting": forgetting}
