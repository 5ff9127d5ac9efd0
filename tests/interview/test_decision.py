"""The decision tree, rule by rule and on the seeds' scenarios (table-driven)."""

from __future__ import annotations

import json
import re

import pytest

from bot.core.errors import LadderError
from bot.interview.decision import advise, parse_facts

READY = dict(prompting_tried=True, has_eval_set=True, examples=5000, model_params_b=7, gpu_memory_gb=24)

SCENARIOS = [
    # (name, facts, recommendation, method, rules that must fire, blocker rules)
    (
        "internal policies that change quarterly -> RAG (seed 004, Q1)",
        dict(failure_modes=["knowledge"], knowledge_changes="quarterly", needs_citations=False),
        "rag", None, {"knowledge-gap-rag", "knowledge-changes-often"}, set(),
    ),
    (
        "strict JSON schema at 100k/day after prompting plateaued at 85% -> fine-tune (seed 004, Q3)",
        dict(READY, failure_modes=["format"], prompt_quality=0.85, quality_bar=0.97,
             monthly_requests=3_000_000, task_breadth="narrow", requirements_change="rarely"),
        "fine_tune", "lora", {"prompt-ceiling-reached", "high-volume"}, set(),
    ),
    (
        "medical Q&A: hallucinated dosing, 72% vs 95%, 8,000 validated pairs -> RAG + fine-tune (seed 004)",
        dict(READY, failure_modes=["knowledge", "reasoning"], prompt_quality=0.72, quality_bar=0.95,
             needs_citations=True, examples=8000, knowledge_changes="monthly"),
        "rag+fine_tune", "lora", {"knowledge-gap-rag", "citations-need-rag", "reasoning-pattern", "hybrid"}, set(),
    ),
    (
        "customer support: product changes quarterly, wrong voice, 500k tickets -> RAG + LoRA (seed 001)",
        dict(READY, failure_modes=["knowledge", "style"], knowledge_changes="quarterly", prompt_quality=0.7,
             quality_bar=0.9, examples=500_000, monthly_requests=15_000),
        "rag+fine_tune", "lora", {"knowledge-gap-rag", "prompt-ceiling-reached", "hybrid"}, set(),
    ),
    (
        "a broad general assistant -> prompting (seed 001, don't #4)",
        dict(READY, failure_modes=["style"], task_breadth="broad", prompt_quality=0.8, quality_bar=0.9),
        "prompting", None, {"broad-task"}, set(),
    ),
    (
        "requirements that change weekly -> prompting (seed 000, don't #4)",
        dict(READY, failure_modes=["format"], requirements_change="weekly", prompt_quality=0.7, quality_bar=0.9),
        "prompting", None, {"requirements-change-weekly"}, set(),
    ),
    (
        "under 100 examples -> no GPU time (seed 000, don't #3)",
        dict(READY, failure_modes=["reasoning"], examples=60, prompt_quality=0.6, quality_bar=0.9),
        "fine_tune", "lora", {"reasoning-pattern"}, {"too-few-examples"},
    ),
    (
        "no eval set -> blocked (seed 000, don't #5)",
        dict(READY, failure_modes=["format"], has_eval_set=False, prompt_quality=0.7, quality_bar=0.9),
        "fine_tune", "lora", {"prompt-ceiling-reached"}, {"no-eval-set"},
    ),
    (
        "format problems with no measured prompt -> try prompting first (flowchart)",
        dict(failure_modes=["format"], prompting_tried=False),
        "prompting", None, {"prompt-first"}, set(),
    ),
    (
        "the prompt already meets the bar -> prompting (seed 004 step 1)",
        dict(READY, failure_modes=["style"], prompt_quality=0.96, quality_bar=0.95),
        "prompting", None, {"prompt-meets-bar"}, set(),
    ),
    (
        "quality is good but cost is too high -> fine-tune a smaller model (seed 000 path)",
        dict(READY, failure_modes=["cost"], prompt_quality=0.96, quality_bar=0.95, monthly_requests=2_000_000),
        "fine_tune", "lora", {"smaller-model-for-cost-latency", "high-volume"}, set(),
    ),
    (
        "a sub-200 ms latency budget -> fine-tune a smaller model (seed 004 step 4)",
        dict(READY, failure_modes=["latency"], prompt_quality=0.8, quality_bar=0.9, latency_budget_ms=100),
        "fine_tune", "lora", {"smaller-model-for-cost-latency"}, set(),
    ),
    (
        "stable knowledge with 20k examples and no citations -> bake it in (seed 004 step 2)",
        dict(READY, failure_modes=["knowledge"], knowledge_changes="never", examples=20_000,
             needs_citations=False, prompt_quality=0.7, quality_bar=0.9),
        "fine_tune", "lora", {"static-knowledge-large-data"}, set(),
    ),
    (
        "nothing failing -> keep prompting",
        dict(failure_modes=[]),
        "prompting", None, {"nothing-failing"}, set(),
    ),
    (
        "missing facts are treated conservatively: reasoning alone is blocked three ways",
        dict(failure_modes=["reasoning"]),
        "fine_tune", "lora", {"reasoning-pattern"}, {"no-eval-set", "examples-unknown", "no-prompt-baseline"},
    ),
]


@pytest.mark.parametrize("name, facts, recommendation, method, rules, blockers", SCENARIOS, ids=[s[0][:50] for s in SCENARIOS])
def test_scenarios(name, facts, recommendation, method, rules, blockers):
    advice = advise(parse_facts(facts))
    assert advice.recommendation == recommendation, name
    assert advice.method == method
    fired = {r.rule for r in advice.reasons}
    assert rules <= fired, f"{name}: missing {rules - fired}"
    assert {b.rule for b in advice.blockers} == blockers
    assert advice.ready_for_gpu == (method is not None and not blockers)
    for finding in [*advice.reasons, *advice.blockers, *advice.warnings]:
        assert finding.rule and finding.text.endswith((".", "!")), finding


@pytest.mark.parametrize(
    "params_b, gpu_gb, examples, method, blocker",
    [
        (7, 24, 5000, "lora", None),  # LoRA is the production default when it fits
        (7, 16, 5000, "qlora", None),  # 7B LoRA (~16.4 GB) does not fit 16 GB -> QLoRA
        (70, 48, 5000, "qlora", None),  # 70B QLoRA fits one 48 GB GPU
        (70, 24, 5000, "qlora", "does-not-fit"),
        (7, 160, 200_000, "full", None),  # full only with abundant data and memory
        (7, 80, 5000, "lora", None),  # memory alone does not justify full fine-tuning
    ],
)
def test_method_follows_model_size_and_gpu_memory(params_b, gpu_gb, examples, method, blocker):
    facts = parse_facts(dict(READY, failure_modes=["format"], prompt_quality=0.7, quality_bar=0.9,
                             model_params_b=params_b, gpu_memory_gb=gpu_gb, examples=examples))
    advice = advise(facts)
    assert advice.method == method
    assert ("does-not-fit" in {b.rule for b in advice.blockers}) == (blocker is not None)
    est = advice.estimates
    assert est["memory_gb"] == est["memory_gb_by_method"][method] if method != "dora" else True
    if blocker is None:
        assert est["memory_gb"] * 1.1 <= gpu_gb  # 10% headroom


def test_estimates_on_the_card():
    facts = parse_facts(dict(READY, failure_modes=["format"], prompt_quality=0.7, quality_bar=0.9,
                             monthly_requests=3_000_000, gpu_memory_gb=80))
    est = advise(facts).estimates
    assert est["gpu"] == "A100-80GB"  # timed on a GPU like the team's own
    assert est["train_hours"] > 0 and est["train_cost_usd"] > 0
    assert est["forgetting_mix"]["general_examples"] == 2142
    assert est["breakeven"]["cheaper"] == "fine_tune"
    assert est["trainable_params"] > 0 and est["adapter_mb"] > 0


def test_warnings_follow_the_data_guidance():
    def warnings(examples, modes=("format",)):
        facts = parse_facts(dict(READY, failure_modes=list(modes), prompt_quality=0.7, quality_bar=0.9, examples=examples))
        return {w.rule for w in advise(facts).warnings}

    assert "small-dataset" in warnings(300)
    assert "under-1000" in warnings(700)
    assert "curate-first" in warnings(200_000)
    assert not {"small-dataset", "under-1000", "curate-first"} & warnings(5000)
    assert "forgetting" in warnings(5000)
    assert "assumed-model-size" in {
        w.rule for w in advise(parse_facts(dict(failure_modes=["reasoning"]))).warnings
    }


def test_advice_is_deterministic_and_explains_itself():
    facts = parse_facts(SCENARIOS[2][1])
    first, second = advise(facts).to_dict(), advise(facts).to_dict()
    assert first == second
    reasons = {r["rule"]: r for r in first["reasons"]}
    assert reasons["citations-need-rag"]["because"] == {"needs_citations": True}
    assert set(first) >= {"recommendation", "method", "reasons", "blockers", "warnings", "next_steps", "estimates"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"failure_modes": ["knowledge"], "budget": 5}, "unknown key 'budget'; known keys: task, failure_modes"),
        ({"failure_modes": ["knowledge"], "prompt_quality": 1.5}, "'prompt_quality' must be at most 1, got 1.5"),
        ({"failure_modes": ["knowledge"], "examples": -3}, "'examples' must be at least 0, got -3"),
        ({"failure_modes": ["vibes"]}, "'failure_modes.0' must be one of"),
        ({"knowledge_changes": "weekly"}, "'failure_modes' is required"),
        ({"failure_modes": ["format"], "knowledge_changes": "hourly"}, "'knowledge_changes' must be one of"),
        (["knowledge"], "must be a JSON object"),
    ],
)
def test_bad_facts_name_the_key(data, message):
    with pytest.raises(LadderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_facts(data)


def test_breakeven_on_the_card_matches_the_seed_threshold():
    def card(volume):
        return advise(parse_facts(dict(READY, failure_modes=["cost"], prompt_quality=0.96, quality_bar=0.95,
                                       monthly_requests=volume)))

    high = card(2_000_000)
    # Seed 002: fine-tuning pays off at 100,000+ requests a month.
    assert 100_000 <= high.estimates["breakeven"]["breakeven_requests_per_month"] <= 200_000
    assert high.estimates["breakeven"]["cheaper"] == "fine_tune"
    assert high.recommendation == "fine_tune"
    low = card(20_000)
    assert low.estimates["breakeven"]["cheaper"] == "prompting"
    # Cost was the only reason: below the break-even the card keeps prompting, and says until when.
    assert low.recommendation == "prompting" and low.method is None and not low.ready_for_gpu
    reason = {r.rule: r for r in low.reasons}["below-breakeven"]
    volume = low.estimates["breakeven"]["breakeven_requests_per_month"]
    assert f"{volume:,} requests a month" in reason.text and "20,000" in reason.text
    assert reason.because == {"monthly_requests": 20_000}


def test_breakeven_only_decides_when_cost_is_the_only_reason():
    # A support desk that also needs a reasoning pattern still fine-tunes at low volume, warned.
    mixed = advise(parse_facts(dict(READY, failure_modes=["cost", "reasoning"], prompt_quality=0.7,
                                    quality_bar=0.9, monthly_requests=20_000)))
    assert mixed.recommendation == "fine_tune"
    assert "volume-below-breakeven" in {w.rule for w in mixed.warnings}
    assert "below-breakeven" not in {r.rule for r in mixed.reasons}
    # A latency budget is a reason of its own: a small model is needed whatever the volume.
    fast = advise(parse_facts(dict(READY, failure_modes=["cost"], prompt_quality=0.96, quality_bar=0.95,
                                   monthly_requests=20_000, latency_budget_ms=120)))
    assert fast.recommendation == "fine_tune"
    # Cost alone with no volume: no GPU time until the break-even can be checked.
    unknown = advise(parse_facts(dict(READY, failure_modes=["cost"], prompt_quality=0.96, quality_bar=0.95)))
    assert unknown.recommendation == "fine_tune"
    assert "requests-unknown" in {b.rule for b in unknown.blockers} and not unknown.ready_for_gpu


@pytest.mark.parametrize("modes, examples, blocked, needed", [
    (["format"], 300, False, None),  # a few hundred examples teach a format (seed 000: 100-500)
    (["style"], 150, False, None),
    (["reasoning"], 300, True, 1000),  # not a reasoning pattern: thousands
    (["format", "reasoning"], 800, True, 1000),
    (["reasoning"], 3000, False, None),
    (["format"], 60, True, 100),
])
def test_examples_needed_depend_on_the_failure(modes, examples, blocked, needed):
    advice = advise(parse_facts(dict(READY, failure_modes=modes, prompt_quality=0.7, quality_bar=0.9,
                                     examples=examples)))
    assert advice.recommendation == "fine_tune"
    found = {b.rule: b for b in advice.blockers if b.rule in {"too-few-examples", "too-few-for-reasoning"}}
    assert bool(found) == blocked
    if blocked:
        (blocker,) = found.values()
        assert f"at least {needed:,}" in blocker.text
        if needed > 100:
            assert f"Collect {needed - examples:,} more" in blocker.text
    if modes == ["reasoning"] and examples == 3000:
        assert "reasoning-data" in {w.rule for w in advice.warnings}


def test_a_facts_file_takes_json_types_only_and_names_the_key(tmp_path):
    from bot.interview.decision import load_facts

    facts = tmp_path / "facts.json"
    for key, value, says in [("prompting_tried", "yes", "must be true or false (JSON, without quotes), got 'yes'"),
                             ("examples", True, "must be a whole number, got True"),
                             ("examples", "500", "must be a whole number, got '500'"),
                             ("prompt_quality", "0.5", "must be a number, got '0.5'"),
                             ("failure_modes", "format", "must be a list, got 'format'")]:
        facts.write_text(json.dumps({**READY, "failure_modes": ["format"], key: value}))
        with pytest.raises(LadderError, match=re.escape(f"facts file {facts}: {key!r} {says}")):
            load_facts(facts)
    facts.write_text(json.dumps({**READY, "failure_modes": ["format"], "prompt_quality": 1}))  # a whole number is a number
    assert load_facts(facts).prompt_quality == 1
