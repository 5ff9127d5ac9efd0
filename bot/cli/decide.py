"""Deciding: `advise`, `estimate` and `breakeven`, over the same functions as the interview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.cli.app import (
    JsonFlag,
    Method,
    app,
    emit_json,
    render_human,
    settings_from_env,
)
from bot.core.errors import LadderError


@app.command()
def advise(
    answers: Annotated[Path, typer.Option("--answers", help="JSON facts file (schema in the README).")],
    as_json: JsonFlag = False,
) -> None:
    """Run the decision tree on a facts file: prompting, RAG, fine-tuning or both."""
    from bot.interview.decision import advise as decide
    from bot.interview.decision import load_facts

    advice = decide(load_facts(answers), settings_from_env().gpu_prices)
    if as_json:
        emit_json(advice.to_dict())
        return
    from bot.interview.chat import card_replies

    render_human(card_replies(advice))


@app.command()
def estimate(
    params_b: Annotated[float, typer.Option("--params-b", help="Model size in billions of parameters.")],
    method: Annotated[Method, typer.Option("--method", help="Training method.")],
    seq_len: Annotated[int, typer.Option("--seq-len", min=1, help="Sequence length in tokens.")] = 1024,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Micro-batch size per GPU.")] = 1,
    rank: Annotated[int, typer.Option("--rank", min=1, help="LoRA rank r (ignored for full).")] = 16,
    target_modules: Annotated[
        str, typer.Option("--target-modules", help="all-linear (default) or attention (q and v only).")
    ] = "all-linear",
    no_checkpointing: Annotated[
        bool, typer.Option("--no-gradient-checkpointing", help="Estimate without gradient checkpointing.")
    ] = False,
    examples: Annotated[
        Optional[int], typer.Option("--examples", min=1, help="Training examples, to estimate time and cost.")
    ] = None,
    gpu: Annotated[
        Optional[str], typer.Option("--gpu", help="GPU to time on (default: the cheapest that fits).")
    ] = None,
    tokens_per_example: Annotated[
        int, typer.Option("--tokens-per-example", min=1, help="Average tokens per example.")
    ] = 512,
    epochs: Annotated[float, typer.Option("--epochs", min=0.1, help="Passes over the data.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Estimate training GPU memory, trainable parameters, adapter size, and time and cost."""
    from bot.interview import estimates as est

    settings = settings_from_env()
    result = est.estimate_memory(
        params_b, method.value, seq_len=seq_len, batch=batch, rank=rank,
        target_modules=target_modules, gradient_checkpointing=not no_checkpointing,
    ).to_dict()
    result["gpus_that_fit"] = [
        g.name for g in est.gpu_table(settings.gpu_prices) if est.fits(result["memory_gb"], g.memory_gb)
    ]
    if examples:
        chosen = est.find_gpu(gpu, settings.gpu_prices) if gpu else est.cheapest_fitting_gpu(
            result["memory_gb"], settings.gpu_prices
        )
        if chosen is None:
            raise LadderError(
                f"no single GPU in the table holds {result['memory_gb']:g} GB; try --method qlora, "
                "a shorter --seq-len or a smaller --batch"
            )
        result.update(est.estimate_training_time(
            params_b, method.value, examples, chosen, tokens_per_example, epochs, not no_checkpointing
        ))
    if as_json:
        emit_json(result)
        return
    from bot.chat.messages import Table, Text

    rows = [(k.replace("_", " "), str(v)) for k, v in result.items() if k != "explanation"]
    render_human([Table(("estimate", "value"), tuple(rows), title=f"{method.value} on {params_b:g}B"),
                  Text(result["explanation"])])


@app.command()
def breakeven(
    monthly_requests: Annotated[int, typer.Option("--monthly-requests", min=0, help="Requests per month.")],
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", min=0, help="Prompt tokens per request without fine-tuning (the long few-shot prompt).")],
    fine_tuned_prompt_tokens: Annotated[int, typer.Option("--fine-tuned-prompt-tokens", min=0, help="Prompt tokens per request with the fine-tuned model.")],
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0, help="Output tokens per request.")],
    input_price: Annotated[float, typer.Option("--input-price", min=0, help="USD per 1M input tokens, prompted model (as API price lists give it, e.g. 2.5).")],
    output_price: Annotated[float, typer.Option("--output-price", min=0, help="USD per 1M output tokens, prompted model (e.g. 10).")],
    training_cost: Annotated[float, typer.Option("--training-cost", min=0, help="One-off training cost in USD.")],
    fine_tuned_input_price: Annotated[Optional[float], typer.Option("--fine-tuned-input-price", min=0, help="USD per 1M input tokens, fine-tuned model (default: same).")] = None,
    fine_tuned_output_price: Annotated[Optional[float], typer.Option("--fine-tuned-output-price", min=0, help="USD per 1M output tokens, fine-tuned model (default: same).")] = None,
    hosting_monthly: Annotated[float, typer.Option("--hosting-monthly", min=0, help="Monthly hosting cost of the fine-tuned model, USD.")] = 0.0,
    amortise_months: Annotated[int, typer.Option("--amortise-months", min=1, help="Months to spread the training cost over.")] = 12,
    as_json: JsonFlag = False,
) -> None:
    """Compare a long prompt with a fine-tuned short prompt: monthly costs and break-even volume.

    Prices are USD per 1M tokens, like API price lists and the interview card.
    """
    from bot.interview.estimates import breakeven as compute

    result = compute(
        monthly_requests, prompt_tokens, fine_tuned_prompt_tokens, output_tokens, input_price,
        output_price, training_cost, fine_tuned_input_price, fine_tuned_output_price,
        hosting_monthly, amortise_months,
    ).to_dict()
    if as_json:
        emit_json(result)
        return
    from bot.chat.messages import Table

    render_human([Table(("figure", "value"), tuple((k.replace("_", " "), str(v)) for k, v in result.items()), title="Break-even")])
