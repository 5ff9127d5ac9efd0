"""The dataset doctor: is this data fit to train on, and what would make it fit?

Reports the format and counts, every parse or schema error with its line, empty fields, exact
and near duplicates, PII, token lengths (with the base model's tokenizer), label imbalance, and
a verdict against the seeds' guidance: under 100 examples is refused, 100-500 is enough for
style or format only, 1,000 or more is good ("1,000 excellent examples beat 100,000 mediocre
ones"). `fix` writes a cleaned copy with a seeded, leak-free train/validation split.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from trainer.errors import LadderError
from trainer.formats import Example, Parsed, read_dataset
from trainer.sequences import fit_to_length, tokenize_example

MIN_EXAMPLES = 100  # seed 000: fewer than 100 examples is not enough signal
STYLE_ONLY = 500  # seed 000: 100-500 examples is the minimum viable for style/format
GOOD = 1000  # seeds: 1,000 excellent examples is the good baseline
NEAR_DUPLICATE = 0.85  # Jaccard similarity of character 5-grams that counts as a near duplicate
LISTED = 50  # lines listed per finding; counts are always complete
BANDS, ROWS = 16, 4  # MinHash LSH: a pair at Jaccard 0.85 shares a band with probability ~1

# PII patterns (seed 001: "Always scrub PII before training"). Cards are Luhn-checked below.
PII_PATTERNS = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "api_key": re.compile(
        r"\b(?:sk-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|AIza[0-9A-Za-z_-]{30,})\b"
        r"|(?i:\b(?:api[_-]?key|secret|token|password)\s*[:=]\s*)['\"]?[A-Za-z0-9_\-./+=]{12,}"
    ),
    "credit_card": re.compile(r"\b(?:\d[ -]?){13,19}\b"),
    "ip_address": re.compile(
        r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
        r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"
    ),
    # 9-15 digits (E.164), not glued to other digits or words; a trailing full stop is fine.
    "phone": re.compile(r"(?<![\w.+])\+?\d[\d ().-]{7,}\d(?![\w-])(?![ .]\d)"),
}
PII_TOKENS = {"email": "[EMAIL]", "api_key": "[SECRET]", "credit_card": "[CARD]", "ip_address": "[IP]", "phone": "[PHONE]"}


def luhn_ok(digits: str) -> bool:
    """Return True when `digits` passes the Luhn checksum (real card numbers do)."""
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def allowed(address: str, allow: tuple[str, ...] | list[str]) -> bool:
    """Return True when an email address is on the allow-list: the address itself, or its
    domain or a parent domain (`acme.com` allows `help@support.acme.com`)."""
    address = address.lower()
    domain = address.rpartition("@")[2]
    for entry in (a.strip().lower().lstrip("@") for a in allow):
        if entry and (address == entry or domain == entry or domain.endswith("." + entry)):
            return True
    return False


def find_pii(text: str, allow: tuple[str, ...] | list[str] = ()) -> dict[str, list[str]]:
    """Return the PII found in `text` by kind (emails, keys, Luhn-valid cards, IPs, phones).

    Email addresses on `allow` (addresses or domains, e.g. the company's own support domain)
    are not personal data.
    """
    found: dict[str, list[str]] = {}
    taken: list[tuple[int, int]] = []
    for kind, pattern in PII_PATTERNS.items():  # order matters: a card is not also a phone
        for match in pattern.finditer(text):
            span = match.span()
            if any(s < span[1] and span[0] < e for s, e in taken):
                continue
            value = match.group(0)
            if kind == "credit_card":
                digits = re.sub(r"\D", "", value)
                if not (13 <= len(digits) <= 19 and luhn_ok(digits)):
                    continue
            if kind == "phone" and not 9 <= len(re.sub(r"\D", "", value)) <= 15:
                continue
            if kind == "email" and allowed(value, allow):
                taken.append(span)  # not personal data, and not a phone number either
                continue
            found.setdefault(kind, []).append(value)
            taken.append(span)
    return found


def scrub(text: str, allow: tuple[str, ...] | list[str] = ()) -> str:
    """Return `text` with every PII finding replaced by a placeholder like [EMAIL]."""
    for kind, values in find_pii(text, allow).items():
        for value in sorted(set(values), key=len, reverse=True):
            text = text.replace(value, PII_TOKENS[kind])
    return text


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _shingles(text: str) -> set[str]:
    # Character 5-grams: one changed word in a short example still leaves most of them shared.
    normal = _normal(text)
    if len(normal) < 5:
        return {normal}
    return {normal[i:i + 5] for i in range(len(normal) - 4)}


def duplicates(examples: list[Example]) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """Return exact duplicates ([line, first line]) and near duplicates (Jaccard >= 0.85 on
    character 5-grams of the normalised text).

    Near duplicates are found with MinHash (16 bands of 4 hashes), then confirmed with the
    exact Jaccard similarity, so the cost stays linear in the dataset size.
    """
    exact, first_seen = [], {}
    for ex in examples:
        key = hashlib.sha1(json.dumps(ex.messages, sort_keys=True).encode()).hexdigest()
        if key in first_seen:
            exact.append([ex.line, first_seen[key]])
        else:
            first_seen[key] = ex.line
    exact_lines = {line for line, _ in exact}
    candidates = [ex for ex in examples if ex.line not in exact_lines]
    shingles = [_shingles(ex.prompt + "\n" + ex.completion) for ex in candidates]
    rng = np.random.default_rng(0)
    a = rng.integers(1, 2**31 - 1, size=BANDS * ROWS, dtype=np.int64)
    b = rng.integers(0, 2**31 - 1, size=BANDS * ROWS, dtype=np.int64)
    prime = np.int64(2**31 - 1)
    # Each LSH bucket keeps its first member as representative; later members are compared
    # with it only, so templated data (many similar rows) stays linear instead of quadratic.
    representative: dict[tuple, int] = {}
    near, flagged = [], set()
    for index, items in enumerate(shingles):
        hashes = np.fromiter((zlib.crc32(s.encode()) & 0x7FFFFFFF for s in items), dtype=np.int64, count=len(items))
        signature = ((np.outer(hashes, a) + b) % prime).min(axis=0)
        compared = set()
        for band in range(BANDS):
            key = (band, *signature[band * ROWS:(band + 1) * ROWS].tolist())
            other = representative.setdefault(key, index)
            if other == index or other in compared or index in flagged:
                continue
            compared.add(other)
            union = shingles[other] | shingles[index]
            similarity = len(shingles[other] & shingles[index]) / len(union) if union else 1.0
            if similarity >= NEAR_DUPLICATE:
                flagged.add(index)
                near.append({"line": candidates[index].line, "like": candidates[other].line,
                             "similarity": round(similarity, 3)})
    near.sort(key=lambda d: d["line"])
    return exact, near


def labels(examples: list[Example]) -> dict[str, Any] | None:
    """Return label counts when the answers look like classes (few, short, repeated)."""
    answers = [ex.completion.strip() for ex in examples]
    if len(answers) < 10:
        return None
    counts = Counter(answers)
    short = all(len(a) <= 40 and "\n" not in a for a in counts)
    if not short or len(counts) > min(50, len(answers) // 3):
        return None
    most, least = counts.most_common()[0][1], counts.most_common()[-1][1]
    return {
        "distinct": len(counts),
        "counts": dict(counts.most_common()),
        "imbalance_ratio": round(most / least, 2),
        "imbalanced": most / least > 3,
    }


def token_stats(examples: list[Example], tokenizer_path: str, max_length: int) -> dict[str, Any]:
    """Return token-length statistics with the base model's chat template applied.

    Raises LadderError when the tokenizer cannot be loaded from disk.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise LadderError(
            f"could not load a tokenizer from {tokenizer_path!r} ({type(exc).__name__}); pass a local model folder "
            "or a model already in the Hugging Face cache"
        ) from None
    lengths, dropped_lines, cut = [], [], 0
    for ex in examples:
        if tokenizer.chat_template:
            ids, answer_start = tokenize_example(tokenizer, ex.messages)
            if fit_to_length(ids, answer_start, max_length) is None:
                dropped_lines.append(ex.line)
            elif len(ids) > max_length:
                cut += 1
        else:
            ids = tokenizer("\n".join(m["content"] for m in ex.messages))["input_ids"]
            cut += len(ids) > max_length
        lengths.append(len(ids))
    ordered = sorted(lengths)
    return {
        "tokenizer": str(tokenizer_path),
        "max_length": max_length,
        "mean": round(statistics.fmean(lengths), 1) if lengths else 0,
        "p50": ordered[len(ordered) // 2] if lengths else 0,
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if lengths else 0,
        "max": ordered[-1] if lengths else 0,
        "total": sum(lengths),
        "truncated": cut,  # longer than max_length: the prompt loses its start, the answer is kept
        "dropped": len(dropped_lines),  # the answer alone is longer than max_length: not trained on
        "dropped_lines": dropped_lines[:LISTED],
    }


def check(path: Path, base_model: str | None = None, max_length: int = 1024,
          columns: dict[str, str] | None = None, pii_allow: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Return the doctor's report on a dataset file; `verdict.trainable` says if it may train.

    `pii_allow` lists email addresses or domains that are not personal data. Raises LadderError
    when the file as a whole cannot be read.
    """
    parsed = read_dataset(Path(path), columns)
    return report(parsed, Path(path), base_model, max_length, pii_allow)


def report(parsed: Parsed, path: Path, base_model: str | None, max_length: int,
           pii_allow: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Return the doctor's report for an already-parsed dataset."""
    examples = parsed.examples
    exact, near = duplicates(examples)
    pii: dict[str, list[int]] = {}
    for ex in examples:
        for kind in find_pii("\n".join(m["content"] for m in ex.messages), pii_allow):
            pii.setdefault(kind, []).append(ex.line)
    empty = [{"line": ex.line, "field": f} for ex in examples for f in ex.empty_fields]
    label_info = labels(examples)
    tokens = token_stats(examples, base_model, max_length) if base_model else None
    too_long = set(tokens["dropped_lines"]) if tokens else set()
    duplicate = {line for line, _ in exact} | {d["line"] for d in near}
    usable = len(examples) - len(duplicate | too_long)

    problems, warnings = [], []
    if parsed.errors:
        first = parsed.errors[0]
        problems.append(f"{len(parsed.errors)} line(s) cannot be used, first line {first['line']}: {first['problem']}; fix them or drop them with --fix")
    if pii:
        kinds = ", ".join(f"{k} (line {v[0]})" for k, v in pii.items())
        problems.append(f"personal data found: {kinds}; scrub it with --fix before training")
    if empty:
        problems.append(f"{len(empty)} empty field(s), first line {empty[0]['line']} ({empty[0]['field']}); fill or drop them")
    if usable < MIN_EXAMPLES:
        problems.append(f"only {usable} usable examples; at least {MIN_EXAMPLES} are needed to train (1,000+ is good)")
    elif usable < STYLE_ONLY:
        warnings.append(f"{usable} examples is enough for style or format only; reasoning needs thousands")
    elif usable < GOOD:
        warnings.append(f"{usable} examples: below 1,000 overfitting comes fast; keep a validation split")
    if exact or near:
        warnings.append(f"{len(exact)} exact and {len(near)} near duplicate(s); --fix drops them")
    if label_info and label_info["imbalanced"]:
        warnings.append(f"labels are imbalanced ({label_info['imbalance_ratio']}:1); the model will favour the common ones")
    if tokens and tokens["truncated"]:
        warnings.append(f"{tokens['truncated']} example(s) are longer than {max_length} tokens: their prompts lose "
                        "their start, the answers are kept whole")
    if tokens and tokens["dropped"]:
        warnings.append(f"{tokens['dropped']} example(s) have answers longer than {max_length} tokens (first line "
                        f"{tokens['dropped_lines'][0]}) and will be left out; raise max_length to keep them")
    level = "refused" if usable < MIN_EXAMPLES else "style_only" if usable < STYLE_ONLY else "ok" if usable < GOOD else "good"
    return {
        "file": str(path),
        "format": parsed.format,
        "rows": parsed.rows,
        "valid": len(examples),
        "invalid": len(parsed.errors),
        "usable": usable,
        "errors": parsed.errors[:LISTED],
        "empty_fields": empty[:LISTED],
        "duplicates": {"exact": len(exact), "near": len(near), "exact_lines": exact[:LISTED], "near_lines": near[:LISTED]},
        "pii": {kind: {"count": len(lines), "lines": lines[:LISTED]} for kind, lines in pii.items()},
        "tokens": tokens,
        "labels": label_info,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "verdict": {
            "trainable": not problems,
            "level": level,
            "problems": problems,
            "warnings": warnings,
            "first_problem": problems[0] if problems else None,
        },
    }


def fix(path: Path, out: Path, val_fraction: float = 0.1, seed: int = 0,
        columns: dict[str, str] | None = None, pii_allow: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Write a cleaned copy of a dataset and a seeded train/validation split.

    PII is scrubbed, unusable lines and empty examples dropped, exact and near duplicates
    dropped (the first kept). Examples sharing a prompt stay in the same split (no leakage),
    and the split is stratified by label when the answers are classes. Writes OUT, and
    OUT's stem + ".train.jsonl" / ".val.jsonl" beside it, all as OpenAI chat JSONL; returns counts.
    """
    if not 0 < val_fraction < 0.5:
        raise LadderError(f"validation fraction must be between 0 and 0.5, got {val_fraction}")
    parsed = read_dataset(Path(path), columns)
    exact, near = duplicates(parsed.examples)
    dropped = {line for line, _ in exact} | {d["line"] for d in near}
    kept = [ex for ex in parsed.examples if ex.line not in dropped and not ex.empty_fields]
    cleaned = [[{"role": m["role"], "content": scrub(m["content"], pii_allow)} for m in ex.messages] for ex in kept]
    label_info = labels(kept)

    # Group by normalised prompt so the same question never lands on both sides.
    groups: dict[str, list[int]] = defaultdict(list)
    for index, messages in enumerate(cleaned):
        groups[_normal("\n".join(m["content"] for m in messages[:-1]))].append(index)
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        label = cleaned[members[0]][-1]["content"].strip() if label_info else ""
        strata[label].append(members)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(strata):
        bucket = strata[label]
        rng.shuffle(bucket)
        size = sum(len(g) for g in bucket)
        want = round(size * val_fraction)
        taken = 0
        for members in bucket:
            (val if taken < want else train).extend(members)
            if taken < want:
                taken += len(members)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    train_path = out.with_name(out.stem + ".train.jsonl")
    val_path = out.with_name(out.stem + ".val.jsonl")
    for target, indices in ((out, range(len(cleaned))), (train_path, sorted(train)), (val_path, sorted(val))):
        target.write_text("".join(json.dumps({"messages": cleaned[i]}, ensure_ascii=False) + "\n" for i in indices),
                          encoding="utf-8")
    return {
        "out": str(out), "train": str(train_path), "val": str(val_path),
        "kept": len(cleaned), "train_examples": len(train), "val_examples": len(val),
        "dropped_invalid": len(parsed.errors), "dropped_duplicates": len(dropped),
        "dropped_empty": sum(1 for ex in parsed.examples if ex.line not in dropped and ex.empty_fields),
        "stratified": bool(label_info),
    }
