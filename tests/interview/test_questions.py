"""The question bank covers every fact, and free-text answers are read sensibly."""

from __future__ import annotations

import pytest

from bot.core.errors import LadderError
from bot.interview.decision import FACT_KEYS, parse_facts
from bot.interview.questions import load_questions, next_question, parse_answer, question, relevant_facts


def test_every_fact_has_exactly_one_question():
    ids = [q.id for q in load_questions()]
    assert sorted(ids) == sorted(FACT_KEYS)
    for q in load_questions():
        assert q.text.endswith("?") and q.help
        for condition in q.ask_when:
            assert set(condition) <= set(FACT_KEYS), q.id
        if q.type in {"choice", "multi"}:
            assert q.choices, q.id
            # Choice values must be valid facts, so a button can never store a bad answer.
            for option in q.choices:
                value = [option.value] if q.type == "multi" else option.value
                parse_facts({"failure_modes": [], q.id: value} if q.id != "failure_modes" else {"failure_modes": value})


@pytest.mark.parametrize(
    "qid, text, value",
    [
        ("examples", "about 3k examples", 3000),
        ("examples", "1,200", 1200),
        ("examples", "2.5 million rows", 2_500_000),
        ("monthly_requests", "100k requests a day", 3_000_000),
        ("monthly_requests", "2M a month", 2_000_000),
        ("monthly_requests", "5000 per hour", 3_600_000),
        ("monthly_requests", "70k a week", 300_000),
        ("prompt_quality", "85%", 0.85),
        ("prompt_quality", "0.85", 0.85),
        ("prompt_quality", "about 72", 0.72),
        ("latency_budget_ms", "200ms", 200),
        ("latency_budget_ms", "1.5 s", 1500),
        ("model_params_b", "Qwen 0.5B", 0.5),
        ("model_params_b", "500M", 0.5),
        ("model_params_b", "llama 70b", 70),
        ("gpu_memory_gb", "24GB", 24),
        ("model_params_b", "llama 3 8B", 8),
        ("model_params_b", "llama-3-70b", 70),
        ("model_params_b", "qwen2.5-0.5b-instruct", 0.5),
        ("model_params_b", "7", 7),
        ("gpu_memory_gb", "one RTX 4090 with 24GB", 24),
        ("gpu_memory_gb", "2x 80GB A100", 160),
        ("gpu_memory_gb", "80", 80),
        ("has_eval_set", "yes, 500 questions", True),
        ("has_eval_set", "not yet", False),
        ("knowledge_changes", "every quarter", "quarterly"),
        ("task_breadth", "a broad assistant", "broad"),
        ("failure_modes", "facts and tone, also too slow", ["knowledge", "style", "latency"]),
        ("failure_modes", "nothing", []),
        ("task", "  sort tickets  ", "sort tickets"),
    ],
)
def test_free_text_answers(qid, text, value):
    assert parse_answer(question(qid), text) == value


@pytest.mark.parametrize(
    "qid, text, message",
    [
        ("examples", "lots", "answer like `about 3k` or `3000`"),
        ("prompt_quality", "150%", "between 0 and 100%"),
        ("has_eval_set", "maybe", "answer `yes` or `no`"),
        ("knowledge_changes", "whenever", "answer with one of them"),
        ("failure_modes", "it is bad", "name one or more"),
        ("gpu_memory_gb", "an RTX 4090", "GPU memory 4090 GB is out of range"),
        ("gpu_memory_gb", "rtx 4090 or a 3090", "couldn't tell which number"),
        ("model_params_b", "5000b", "model size 5000B is out of range"),
    ],
)
def test_unreadable_answers_say_what_would_work(qid, text, message):
    with pytest.raises(LadderError, match=message):
        parse_answer(question(qid), text)


def test_known_answers_are_skipped_and_relevance_follows_answers():
    assert next_question({}).id == "task"
    answers = {"task": "x", "failure_modes": ["knowledge"]}
    assert next_question(answers).id == "prompting_tried"
    answers.update(prompting_tried=False, knowledge_changes="weekly", needs_citations=True, has_eval_set=True)
    assert next_question(answers) is None  # nothing about fine-tuning is relevant
    answers["knowledge_changes"] = "never"  # static knowledge makes fine-tuning facts relevant
    assert next_question(answers).id == "examples"
    # An answer made irrelevant by a later change is not fed to the decision.
    assert "prompt_quality" not in relevant_facts({**answers, "prompt_quality": 0.5})
