"""The decision tree: a pure, deterministic function from facts to a recommendation.

Every rule has a stable id and cites the seed it comes from, so the card can say which answers
led where. The order follows `choose_adaptation_strategy` (seed 004) and the decision flowchart
(seed 001): prompt ceiling first, then knowledge (RAG), then format/style/reasoning and
cost/latency (fine-tuning), then the "don't fine-tune when" list (seeds 000, 001) as overrides,
and finally the blockers that must clear before anyone spends GPU time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import LadderError
from bot.interview import estimates
from trainer.formats import read_text_file

FailureMode = Literal["knowledge", "format", "style", "reasoning", "cost", "latency"]
FAILURE_MODES: tuple[str, ...] = ("knowledge", "format", "style", "reasoning", "cost", "latency")
CHANGE_RATES: tuple[str, ...] = ("never", "yearly", "quarterly", "monthly", "weekly", "daily")
# Knowledge that changes this often goes stale in weights between retrains (seed 004, Q1).
FAST_CHANGING = {"quarterly", "monthly", "weekly", "daily"}

MIN_EXAMPLES = 100  # seed 000: "Small dataset (<100 examples): not enough signal"
STYLE_ONLY_EXAMPLES = 500  # seed 000: 100-500 is the minimum viable for style/format transfer
GOOD_EXAMPLES = 1_000  # seeds 000, 002, 004: 1,000 excellent examples; below it overfitting risk
REASONING_EXAMPLES = 1_000  # seed 000: reasoning needs thousands (10,000-50,000 for complex reasoning)
COMPLEX_REASONING_EXAMPLES = 10_000  # seed 000: "Strong model: 10,000-50,000 examples for complex reasoning"
STATIC_KNOWLEDGE_EXAMPLES = 10_000  # seed 004 step 2: large static knowledge can be baked in
FULL_FT_EXAMPLES = 100_000  # seed 000: full fine-tuning wants 100K+ high-quality examples
HIGH_VOLUME_MONTHLY = 100_000  # seed 002: at 100,000+ requests a month fine-tuning pays off
FAST_LATENCY_MS = 200  # seed 004 step 4: a latency budget under 200 ms favours a small model
# Break-even on the card: a long few-shot prompt on a large API model against a short prompt on a
# self-hosted fine-tuned model. Seed 002 puts a minimum 7B deployment at about $950 a month;
# the API prices are typical large-model list prices, stated on the card as assumptions.
BREAKEVEN_ASSUMPTIONS = dict(
    prompt_tokens=2000,
    fine_tuned_prompt_tokens=200,
    output_tokens=200,
    input_price_per_1m=2.5,
    output_price_per_1m=10.0,
    fine_tuned_input_price_per_1m=0.0,
    fine_tuned_output_price_per_1m=0.0,
    hosting_monthly_usd=950.0,
)
BREAKEVEN_NOTE = (
    "2,000-token few-shot prompt on a large API model ($2.50/$10 per 1M tokens) against a "
    "200-token prompt on a self-hosted fine-tuned model at $950/month; 200 output tokens"
)
METHOD_NAMES = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA"}
DEFAULT_PARAMS_B = 7.0  # the seeds' reference size when the team has not chosen a model
DEFAULT_GPU_MEMORY_GB = 24.0  # a single consumer/prosumer card when the team has not said


class Facts(BaseModel):
    """What the team told us. Only `failure_modes` is required; the rest is asked in chat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str | None = Field(None, description="What the model should do, in a sentence.")
    failure_modes: list[FailureMode] = Field(
        ..., description="What goes wrong today: knowledge, format, style, reasoning, cost, latency."
    )
    prompting_tried: bool | None = Field(None, description="Was the best prompt measured on an eval set?")
    prompt_quality: float | None = Field(None, ge=0, le=1, description="Best prompt's score, 0-1.")
    quality_bar: float | None = Field(None, ge=0, le=1, description="Score the task needs, 0-1.")
    knowledge_changes: Literal["never", "yearly", "quarterly", "monthly", "weekly", "daily"] | None = Field(
        None, description="How often the underlying knowledge changes."
    )
    needs_citations: bool | None = Field(None, description="Must answers cite their sources?")
    examples: int | None = Field(None, ge=0, description="Curated training examples available.")
    monthly_requests: int | None = Field(None, ge=0, description="Requests per month in production.")
    latency_budget_ms: int | None = Field(None, gt=0, description="Latency budget per answer, ms.")
    self_hosted_required: bool | None = Field(None, description="Must the model run on your own infrastructure?")
    has_eval_set: bool | None = Field(None, description="Is there a held-out evaluation set?")
    task_breadth: Literal["narrow", "broad"] | None = Field(None, description="One narrow task or a broad assistant?")
    requirements_change: Literal["rarely", "monthly", "weekly"] | None = Field(
        None, description="How often the task's requirements change."
    )
    model_params_b: float | None = Field(None, gt=0, le=2000, description="Model size, billions of parameters.")
    gpu_memory_gb: float | None = Field(None, gt=0, le=2000, description="GPU memory available, GB.")


FACT_KEYS: tuple[str, ...] = tuple(Facts.model_fields)


def parse_facts(data: Any, source: str = "facts", strict: bool = False) -> Facts:
    """Return validated `Facts` from a dict; raise LadderError naming the first bad key.

    `strict` (a facts file) takes JSON's own types only: "yes" is not true, true is not a
    count, "500" is not a number. Chat answers come already parsed, so they need not be."""
    if not isinstance(data, dict):
        raise LadderError(f"{source} must be a JSON object of facts, like {{\"failure_modes\": [\"knowledge\"]}}")
    try:
        return Facts.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise LadderError(f"{source}: {_describe(exc.errors()[0])}") from None


def fact_problem(key: str, value: Any) -> str | None:
    """Return why `value` is not a valid answer for fact `key` (None when it is)."""
    data = {"failure_modes": []} if key != "failure_modes" else {}
    try:
        Facts.model_validate({**data, key: value})
    except ValidationError as exc:
        return _describe(exc.errors()[0])
    return None


def load_facts(path: Path) -> Facts:
    """Return the facts in JSON file `path`; raise LadderError for a missing or bad file."""
    text = read_text_file(path, "facts file", "JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LadderError(
            f"facts file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the JSON"
        ) from None
    return parse_facts(data, f"facts file {path}", strict=True)


def _describe(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown key {key!r}; known keys: {', '.join(FACT_KEYS)}"
    if kind == "missing":
        return f"{key!r} is required: list what goes wrong today ({', '.join(FAILURE_MODES)})"
    if kind in {"less_than_equal", "greater_than_equal", "greater_than", "less_than"}:
        bounds = {"less_than_equal": "at most", "greater_than_equal": "at least",
                  "greater_than": "more than", "less_than": "less than"}[kind]
        limit = next(iter(ctx.values()))
        limit = f"{limit:g}" if isinstance(limit, (int, float)) else limit
        return f"{key!r} must be {bounds} {limit}, got {error['input']!r}"
    if kind == "bool_type":
        return f"{key!r} must be true or false (JSON, without quotes), got {error['input']!r}"
    if kind in {"int_type", "int_from_float"}:
        return f"{key!r} must be a whole number, got {error['input']!r}"
    if kind == "float_type":
        return f"{key!r} must be a number, got {error['input']!r}"
    if kind in {"string_type", "list_type"}:
        return f"{key!r} must be {'text' if kind == 'string_type' else 'a list'}, got {error['input']!r}"
    if kind == "literal_error":
        return f"{key!r} must be one of {ctx.get('expected')}, got {error['input']!r}"
    return f"{key!r} is invalid ({error['msg']}), got {error['input']!r}"


# -- the recommendation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A reason, blocker or warning: a stable rule id, a sentence, and the facts behind it."""

    rule: str
    text: str
    because: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "text": self.text, "because": self.because}


@dataclass(frozen=True)
class Advice:
    """The recommendation card's content; `to_dict` is the `ladder advise --json` schema."""

    recommendation: str
    method: str | None
    reasons: list[Finding]
    blockers: list[Finding]
    warnings: list[Finding]
    next_steps: list[str]
    estimates: dict[str, Any]

    @property
    def ready_for_gpu(self) -> bool:
        """True when fine-tuning is recommended and nothing blocks spending GPU time."""
        return self.method is not None and not self.blockers

    def to_dict(self) -> dict:
        """Return the JSON document printed by `ladder advise --json`."""
        return {
            "recommendation": self.recommendation,
            "method": self.method,
            "reasons": [r.to_dict() for r in self.reasons],
            "blockers": [b.to_dict() for b in self.blockers],
            "warnings": [w.to_dict() for w in self.warnings],
            "next_steps": self.next_steps,
            "estimates": self.estimates,
            "ready_for_gpu": self.ready_for_gpu,
        }


def advise(facts: Facts, gpu_prices: dict[str, float] | None = None) -> Advice:
    """Return the recommendation for `facts`. Deterministic: same facts, same advice.

    Raises LadderError only for an invalid GPU price table.
    """
    reasons: list[Finding] = []
    warnings: list[Finding] = []
    modes = set(facts.failure_modes)
    rag = fine_tune = False
    drivers: set[str] = set()  # why fine-tuning is on the table: cost alone must pass the break-even

    measured = facts.prompting_tried is True and facts.prompt_quality is not None
    meets_bar = measured and facts.quality_bar is not None and facts.prompt_quality >= facts.quality_bar
    below_bar = measured and facts.quality_bar is not None and facts.prompt_quality < facts.quality_bar
    quality = (
        {"prompt_quality": facts.prompt_quality, "quality_bar": facts.quality_bar} if measured else {}
    )

    # 1. Knowledge gaps are retrieval problems (flowchart: wrong KNOWLEDGE -> RAG).
    if "knowledge" in modes:
        static = facts.knowledge_changes in {"never", "yearly"}
        if static and (facts.examples or 0) > STATIC_KNOWLEDGE_EXAMPLES and not facts.needs_citations:
            fine_tune = True
            drivers.add("knowledge")
            reasons.append(Finding(
                "static-knowledge-large-data",
                f"The knowledge is stable ({facts.knowledge_changes}) and you have "
                f"{facts.examples:,} examples: large static knowledge can be baked into the weights.",
                {"knowledge_changes": facts.knowledge_changes, "examples": facts.examples},
            ))
            warnings.append(Finding(
                "sft-teaches-behaviour",
                "Supervised fine-tuning mostly teaches behaviour, not facts; keep RAG in mind "
                "for exact facts, or consider continual pre-training on the raw documents.",
            ))
        else:
            rag = True
            reasons.append(Finding(
                "knowledge-gap-rag",
                "Wrong answers come from missing knowledge: that is a retrieval problem, so "
                "ground the model in your documents with RAG rather than training facts in.",
                {"failure_modes": sorted(modes)},
            ))
            if facts.knowledge_changes in FAST_CHANGING:
                reasons.append(Finding(
                    "knowledge-changes-often",
                    f"Your knowledge changes {facts.knowledge_changes}: weights would go stale "
                    "between retrains, while a RAG index updates without training.",
                    {"knowledge_changes": facts.knowledge_changes},
                ))
        if facts.needs_citations:
            rag = True
            reasons.append(Finding(
                "citations-need-rag",
                "Answers must cite sources: retrieval gives source attribution, fine-tuning cannot.",
                {"needs_citations": True},
            ))

    # 2. Format and style: prompt first; fine-tune only past the measured prompt ceiling.
    behaviour = sorted(modes & {"format", "style"})
    if behaviour:
        if below_bar:
            fine_tune = True
            drivers.update(behaviour)
            reasons.append(Finding(
                "prompt-ceiling-reached",
                f"Your best prompt scores {facts.prompt_quality:.0%} against a bar of "
                f"{facts.quality_bar:.0%} on {' and '.join(behaviour)}: past the prompt ceiling, "
                "fine-tuning locks in consistent behaviour.",
                {"failure_modes": behaviour, **quality},
            ))
        elif not meets_bar:
            reasons.append(Finding(
                "prompt-first",
                f"{' and '.join(behaviour).capitalize()} problems are usually fixed by a better "
                "prompt (few-shot examples, explicit rules, structured output). Measure the best "
                "prompt you can write before climbing.",
                {"failure_modes": behaviour, "prompting_tried": facts.prompting_tried},
            ))

    # 3. Reasoning patterns need weight updates (flowchart: wrong REASONING PATTERN -> fine-tune).
    if "reasoning" in modes:
        fine_tune = True
        drivers.add("reasoning")
        reasons.append(Finding(
            "reasoning-pattern",
            "The model does not reason like your domain experts: behaviour patterns are what "
            "fine-tuning changes.",
            {"failure_modes": ["reasoning"]},
        ))

    # 4. Too slow or expensive -> fine-tune a smaller model (flowchart; seed 004 step 4).
    speed = sorted(modes & {"cost", "latency"})
    fast_budget = facts.latency_budget_ms is not None and facts.latency_budget_ms < FAST_LATENCY_MS
    if speed or fast_budget:
        fine_tune = True
        drivers.update(speed)
        if fast_budget:
            drivers.add("latency")
        because: dict[str, Any] = {}
        if speed:
            because["failure_modes"] = speed
        if fast_budget:
            because["latency_budget_ms"] = facts.latency_budget_ms
        reasons.append(Finding(
            "smaller-model-for-cost-latency",
            "Quality is not the only problem: a smaller fine-tuned model is cheaper and faster "
            "per request than a large prompted one"
            + (f" and fits a {facts.latency_budget_ms} ms budget" if fast_budget else "") + ".",
            because,
        ))
    if fine_tune and (facts.monthly_requests or 0) >= HIGH_VOLUME_MONTHLY:
        reasons.append(Finding(
            "high-volume",
            f"At {facts.monthly_requests:,} requests a month, shorter prompts and a smaller "
            "model pay back the training cost quickly.",
            {"monthly_requests": facts.monthly_requests},
        ))
    if fine_tune and facts.self_hosted_required:
        reasons.append(Finding(
            "self-hosted",
            "The model must run on your infrastructure: fine-tuning an open-weight model keeps "
            "the data in-house.",
            {"self_hosted_required": True},
        ))

    # 5. Don't fine-tune when... (seeds 000, 001): overrides that take fine-tuning off the table.
    prompt_wins = Finding(
        "prompt-meets-bar",
        f"Your best prompt already scores {facts.prompt_quality:.0%} against a bar of "
        f"{facts.quality_bar:.0%}: the simplest solution that works wins.",
        quality,
    ) if meets_bar else None
    overrides = [
        (meets_bar and not speed and not fast_budget, prompt_wins),
        (facts.requirements_change == "weekly", Finding(
            "requirements-change-weekly",
            "The task's requirements change weekly: retraining that often is impractical, so "
            "keep the behaviour in the prompt.",
            {"requirements_change": "weekly"},
        )),
        (facts.task_breadth == "broad", Finding(
            "broad-task",
            "The task is broad: fine-tuning narrows a model, so use the best general model "
            "with good prompts.",
            {"task_breadth": "broad"},
        )),
    ]
    for applies, finding in overrides:
        if fine_tune and applies:
            fine_tune = False
            reasons.append(finding)

    # 6. Cost alone follows the break-even (seed 004, ex. 14.1.3: fine-tuning typically pays for
    # itself above 10K to 100K monthly requests): below it, the long prompt stays cheaper.
    params_b = facts.model_params_b or DEFAULT_PARAMS_B
    gpu_gb = facts.gpu_memory_gb or DEFAULT_GPU_MEMORY_GB
    cost_only = fine_tune and drivers == {"cost"}
    chosen = None  # _choose_method's (method, estimates, blocker), when the break-even needed it
    if cost_only and facts.monthly_requests is not None:
        chosen = _choose_method(facts, params_b, gpu_gb, gpu_prices)
        be = chosen[1].get("breakeven")
        if be and be["cheaper"] == "prompting":
            fine_tune = False
            volume = be["breakeven_requests_per_month"]
            reasons.append(Finding(
                "below-breakeven",
                f"Cost is the reason to fine-tune, but at {facts.monthly_requests:,} requests a month the "
                f"long prompt is cheaper (${be['prompt_monthly_usd']:,.0f} against ${be['fine_tuned_monthly_usd']:,.0f} "
                "a month for a self-hosted fine-tune): keep prompting"
                + (f" until you pass about {volume:,} requests a month." if volume else
                   "; at these prices fine-tuning never pays for itself."),
                {"monthly_requests": facts.monthly_requests},  # facts only: the card names the answers behind it
            ))

    if not modes:
        reasons.append(Finding("nothing-failing", "Nothing fails today: keep prompting and keep measuring."))
    elif not rag and not fine_tune and prompt_wins and prompt_wins not in reasons:
        reasons.append(prompt_wins)

    recommendation = {
        (True, True): "rag+fine_tune",
        (True, False): "rag",
        (False, True): "fine_tune",
        (False, False): "prompting",
    }[(rag, fine_tune)]
    if rag and fine_tune:
        reasons.append(Finding(
            "hybrid",
            "Fine-tune for behaviour and use RAG for knowledge: the two stack (seed 002's "
            "agriculture study: +6% and +5% alone, +11% together).",
        ))

    blockers = _blockers(facts, fine_tune, below_bar, measured, modes)
    if fine_tune and cost_only and facts.monthly_requests is None:
        blockers.append(Finding(
            "requests-unknown",
            "Cost is the reason to fine-tune, and fine-tuning only pays for itself above a "
            "break-even volume (typically 10K to 100K requests a month): say how many requests "
            "a month you serve so the card can check it.",
            {"monthly_requests": None},
        ))
    # Below the break-even the card keeps the estimates it rests on, but no method.
    method, estimate_block, fit_blocker = (None, chosen[1] if chosen and not fine_tune else {}, None)
    if fine_tune:
        if facts.model_params_b is None:
            warnings.append(Finding(
                "assumed-model-size",
                f"No model size given: estimates assume {DEFAULT_PARAMS_B:g}B parameters.",
            ))
        if facts.gpu_memory_gb is None:
            warnings.append(Finding(
                "assumed-gpu-memory",
                f"No GPU memory given: the method assumes one {DEFAULT_GPU_MEMORY_GB:g} GB GPU.",
            ))
        method, estimate_block, fit_blocker = chosen or _choose_method(facts, params_b, gpu_gb, gpu_prices)
        if fit_blocker:
            blockers.append(fit_blocker)
        be = estimate_block.get("breakeven")
        if be and be["cheaper"] == "prompting" and "cost" in modes:
            warnings.append(Finding(
                "volume-below-breakeven",
                f"At {facts.monthly_requests:,} requests a month a self-hosted fine-tune costs more "
                f"than the long prompt; it pays off from about {be['breakeven_requests_per_month']:,}.",
                {"monthly_requests": facts.monthly_requests},
            ))
        warnings.extend(_data_warnings(facts, modes))
        warnings.append(Finding(
            "forgetting",
            "Fine-tuning can erode general abilities: keep the learning rate low, train 1-3 "
            "epochs, mix in general data and check a general eval set; a drop of more than 5% "
            "from base means overtraining.",
        ))
    return Advice(
        recommendation=recommendation,
        method=method,
        reasons=reasons,
        blockers=blockers,
        warnings=warnings,
        next_steps=_next_steps(recommendation, method, blockers, facts),
        estimates=estimate_block,
    )


def examples_needed(modes: set[str]) -> int:
    """Return the fewest curated examples that can fix the named failures (seed 000): about
    100 for a style or format, thousands for a reasoning pattern."""
    return REASONING_EXAMPLES if "reasoning" in modes else MIN_EXAMPLES


def _blockers(facts: Facts, fine_tune: bool, below_bar: bool, measured: bool, modes: set[str]) -> list[Finding]:
    """What must be true before GPU time is spent (only when fine-tuning is recommended)."""
    if not fine_tune:
        return []
    blockers = []
    if facts.has_eval_set is not True:
        blockers.append(Finding(
            "no-eval-set",
            "There is no held-out evaluation set: without one nobody can tell whether "
            "fine-tuning helped. Build one (a few hundred real cases) first.",
            {"has_eval_set": facts.has_eval_set},
        ))
    if facts.examples is None:
        blockers.append(Finding(
            "examples-unknown",
            "We don't know how many curated examples you have: count them (at least 100, "
            "ideally 1,000+) before requesting GPU time.",
            {"examples": None},
        ))
    elif facts.examples < MIN_EXAMPLES:
        blockers.append(Finding(
            "too-few-examples",
            f"{facts.examples} examples is not enough signal to fine-tune (at least "
            f"{MIN_EXAMPLES}, ideally {GOOD_EXAMPLES:,}+). Use few-shot prompting meanwhile.",
            {"examples": facts.examples},
        ))
    elif facts.examples < examples_needed(modes):
        needed = examples_needed(modes)
        blockers.append(Finding(
            "too-few-for-reasoning",
            f"{facts.examples:,} examples can teach a format or a style, not a reasoning pattern: "
            f"reasoning needs thousands (at least {needed:,}, and {COMPLEX_REASONING_EXAMPLES:,}+ for "
            f"complex reasoning). Collect {needed - facts.examples:,} more before requesting GPU time.",
            {"examples": facts.examples, "failure_modes": ["reasoning"]},
        ))
    if not measured:
        blockers.append(Finding(
            "no-prompt-baseline",
            "Prompt ceiling policy: show that the best prompt you can write, measured on the "
            "eval set, falls short of the bar before anyone requests GPU time.",
            {"prompting_tried": facts.prompting_tried, "prompt_quality": facts.prompt_quality},
        ))
    elif facts.quality_bar is None:
        blockers.append(Finding(
            "no-quality-bar",
            "Set the quality bar the task must reach, so the prompt baseline can be judged "
            "against it.",
            {"quality_bar": None},
        ))
    return blockers


def _choose_method(
    facts: Facts, params_b: float, gpu_gb: float, prices: dict[str, float] | None
) -> tuple[str | None, dict[str, Any], Finding | None]:
    """QLoRA when LoRA does not fit, LoRA as the production default, full only with abundance."""
    by_method = {m: estimates.estimate_memory(params_b, m) for m in ("full", "lora", "qlora")}
    abundant = (facts.examples or 0) >= FULL_FT_EXAMPLES
    if abundant and estimates.fits(by_method["full"].memory_gb, gpu_gb):
        method = "full"
    elif estimates.fits(by_method["lora"].memory_gb, gpu_gb):
        method = "lora"
    else:
        method = "qlora"
    chosen = by_method[method]
    blocker = None
    if not estimates.fits(chosen.memory_gb, gpu_gb):
        blocker = Finding(
            "does-not-fit",
            f"Even QLoRA needs about {chosen.memory_gb:g} GB for a {params_b:g}B model; your GPU "
            f"has {gpu_gb:g} GB. Pick a smaller model, a shorter sequence, or a bigger GPU.",
            {"model_params_b": params_b, "gpu_memory_gb": gpu_gb},
        )
    block: dict[str, Any] = {
        "model_params_b": params_b,
        "gpu_memory_gb": gpu_gb,
        "seq_len": chosen.seq_len,
        "memory_gb": chosen.memory_gb,
        "memory_gb_by_method": {m: e.memory_gb for m, e in by_method.items()},
        "trainable_params": chosen.trainable_params,
        "adapter_mb": chosen.adapter_mb,
    }
    # Time it on the team's own GPU when they told us its memory, else the cheapest that fits.
    if facts.gpu_memory_gb is not None:
        gpu = estimates.gpu_like(facts.gpu_memory_gb, prices)
    else:
        gpu = estimates.cheapest_fitting_gpu(chosen.memory_gb, prices)
    if gpu is not None and facts.examples and estimates.fits(chosen.memory_gb, gpu.memory_gb):
        block.update(estimates.estimate_training_time(params_b, method, facts.examples, gpu))
    if facts.examples:
        block["forgetting_mix"] = estimates.forgetting_mix(facts.examples)
    if facts.monthly_requests:
        block["breakeven"] = estimates.breakeven(
            monthly_requests=facts.monthly_requests,
            training_cost_usd=block.get("train_cost_usd", 0.0),
            **BREAKEVEN_ASSUMPTIONS,
        ).to_dict()
        block["breakeven_assumptions"] = BREAKEVEN_NOTE
    return method, block, blocker


def _data_warnings(facts: Facts, modes: set[str]) -> list[Finding]:
    if facts.examples is None or facts.examples < MIN_EXAMPLES:
        return []
    if "reasoning" in modes and facts.examples < COMPLEX_REASONING_EXAMPLES:
        if facts.examples < REASONING_EXAMPLES:
            return []  # a blocker already says how many more are needed
        return [Finding(
            "reasoning-data",
            f"{facts.examples:,} examples can teach a simple reasoning pattern; complex reasoning "
            f"needs {COMPLEX_REASONING_EXAMPLES:,} to 50,000.",
            {"examples": facts.examples},
        )]
    if facts.examples < STYLE_ONLY_EXAMPLES:
        if modes & {"knowledge"}:
            text = (f"{facts.examples} examples is enough for style or format only, not to teach "
                    "knowledge: keep the facts in retrieval.")
        else:
            text = f"{facts.examples} examples is the minimum for style or format transfer; aim for 1,000."
        return [Finding("small-dataset", text, {"examples": facts.examples})]
    if facts.examples < GOOD_EXAMPLES:
        return [Finding(
            "under-1000",
            "Below 1,000 examples overfitting comes fast: hold out a validation split and "
            "stop early.",
            {"examples": facts.examples},
        )]
    if facts.examples > 50_000:
        return [Finding(
            "curate-first",
            "1,000 excellent examples beat 100,000 mediocre ones: deduplicate, scrub PII and "
            "review a sample before training on all of it.",
            {"examples": facts.examples},
        )]
    return []


def _next_steps(recommendation: str, method: str | None, blockers: list[Finding], facts: Facts) -> list[str]:
    steps = []
    if recommendation == "prompting":
        steps.append("Write the best prompt you can (few-shot examples, explicit rules, structured output) and measure it on an eval set.")
    if "rag" in recommendation:
        steps.append("Build a RAG baseline from your documents and measure retrieval hit@k on your own questions.")
    rules = {b.rule for b in blockers}
    if "no-eval-set" in rules:
        steps.append("Collect a held-out evaluation set of real cases before any training.")
    if "no-prompt-baseline" in rules or "no-quality-bar" in rules:
        steps.append("Measure the best prompt against the quality bar to prove the prompt ceiling.")
    if rules & {"too-few-examples", "examples-unknown"}:
        steps.append("Collect and curate at least 100 examples (1,000+ is the good baseline).")
    if "too-few-for-reasoning" in rules:
        steps.append(f"Collect and curate at least {REASONING_EXAMPLES:,} worked examples of the reasoning you need.")
    if method:
        steps.append("Check the dataset with the dataset doctor (format, duplicates, PII, lengths).")
        steps.append(f"Estimate and launch a {METHOD_NAMES[method]} job once the blockers are cleared, then compare it with base and RAG in the arena.")
    return steps
