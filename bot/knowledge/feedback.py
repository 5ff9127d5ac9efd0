"""Thumbs up or down on single answers: each answer `ask` wrote is kept (question, text,
sources), and each user's rating of it, one per user and answer (a second press changes it).

Feedback is kept apart from the arena's blind votes: a rating says an answer was good or bad,
not that it beat another. Two answers to the same question, one rated up and one rated down
on balance, do make a preference pair, and `export-preferences` adds those (`source:
feedback`) to the pairs the battles give."""

from __future__ import annotations

import json
import secrets
from typing import Any

from bot.core.errors import LadderError
from bot.core.migrations import now
from bot.core.store import Store

RATINGS = {"up": 1, "down": -1}
LABELS = {"up": "👍 Helpful", "down": "👎 Not helpful"}


def record_answer(store: Store, project: dict[str, Any], place: str, question: str, answer: str,
                  sources: list[str], model: str, user: str) -> str:
    """Keep an answer that was shown and return its id (what its feedback buttons carry)."""
    answer_id = "q" + secrets.token_hex(6)
    with store.atomic() as db:
        db["answers"].insert({"id": answer_id, "project_id": project["id"], "place": place, "question": question,
                              "answer": answer, "sources": json.dumps(sources), "model": model, "asked_by": user,
                              "created_at": now()})
    return answer_id


def rate(store: Store, answer_id: str, user: str, rating: str) -> dict[str, Any]:
    """Record `user`'s rating ("up" or "down") of an answer; return {changed, up, down} (changed:
    the user had rated it the other way). Raises LadderError for an unknown answer or rating."""
    if rating not in RATINGS:
        raise LadderError(f"unknown rating {rating!r}; rate an answer up or down")
    with store.atomic() as db:
        if not db.execute("SELECT 1 FROM answers WHERE id = ?", [answer_id]).fetchone():
            raise LadderError(f"there is no answer {answer_id!r} to rate; ask the question again for fresh buttons")
        before = db.execute("SELECT rating FROM feedback WHERE answer_id = ? AND user = ?", [answer_id, user]).fetchone()
        stamp = now()
        db["feedback"].upsert({"answer_id": answer_id, "user": user, "rating": RATINGS[rating], "updated_at": stamp,
                               **({} if before else {"created_at": stamp})}, pk=("answer_id", "user"))
        up, down = db.execute("SELECT coalesce(sum(rating = 1), 0), coalesce(sum(rating = -1), 0) FROM feedback "
                              "WHERE answer_id = ?", [answer_id]).fetchone()
    return {"changed": bool(before) and before[0] != RATINGS[rating], "up": up, "down": down}


def summary(store: Store, project: dict[str, Any]) -> dict[str, int]:
    """Return {answers, rated, up, down} for a project: answers written, answers with a rating,
    and the thumbs up and down given."""
    answers, rated, up, down = store.db.execute(
        "SELECT count(DISTINCT a.id), count(DISTINCT f.answer_id), coalesce(sum(f.rating = 1), 0), "
        "coalesce(sum(f.rating = -1), 0) FROM answers a LEFT JOIN feedback f ON f.answer_id = a.id "
        "WHERE a.project_id = ?", [project["id"]]).fetchone()
    return {"answers": answers, "rated": rated, "up": up, "down": down}


def feedback_pairs(store: Store, project: dict[str, Any]) -> list[dict[str, Any]]:
    """Return preference rows {prompt, chosen, rejected, source: "feedback"} from the ratings:
    for each question (compared without case or surrounding space) with an answer rated up on
    balance and a different one rated down on balance, the best against the worst, once."""
    rows = store.db.execute(
        "SELECT a.id, a.question, a.answer, a.model, sum(f.rating) AS score FROM answers a JOIN feedback f "
        "ON f.answer_id = a.id WHERE a.project_id = ? GROUP BY a.id ORDER BY a.created_at", [project["id"]]).fetchall()
    by_question: dict[str, list[tuple]] = {}
    for row in rows:
        by_question.setdefault(row[1].strip().lower(), []).append(row)
    pairs = []
    for answers in by_question.values():
        best, worst = max(answers, key=lambda r: r[4]), min(answers, key=lambda r: r[4])
        if best[4] > 0 > worst[4] and best[2].strip() != worst[2].strip():
            pairs.append({"prompt": best[1], "chosen": best[2], "rejected": worst[2], "chosen_variant": best[3],
                          "rejected_variant": worst[3], "source": "feedback", "answers": [best[0], worst[0]]})
    return pairs
