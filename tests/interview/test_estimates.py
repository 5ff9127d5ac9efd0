"""Estimators pinned to the seeds' published reference points, and to real peft counts."""

from __future__ import annotations

import pytest

from bot.core.errors import LadderError
from bot.interview import estimates
from bot.interview.estimates import Shape, breakeven, estimate_memory, estimate_training_time, find_gpu, forgetting_mix


def within(value: float, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance * target


def test_7b_lora_is_about_16_gb():
    assert within(estimate_memory(7, "lora").memory_gb, 16, 0.15)


def test_7b_qlora_is_about_6_gb():
    assert within(estimate_memory(7, "qlora").memory_gb, 6, 0.15)


def test_70b_qlora_fits_a_48_gb_gpu():
    est = estimate_memory(70, "qlora")
    assert 35 < est.memory_gb <= 48


def test_7b_full_fine_tuning_is_mixed_precision_adamw():
    est = estimate_memory(7, "full")
    # 16 bytes per parameter for weights + gradients + fp32 master + Adam moments = 112 GB.
    assert est.weights_gb + est.trainable_state_gb == pytest.approx(112, abs=0.1)
    assert 112 < est.memory_gb < 125
    assert "56 GB" in est.explanation and "16 bytes per parameter" in est.explanation
    assert est.adapter_mb is None and est.trainable_params == 7_000_000_000


def test_lora_trains_a_small_fraction_and_the_adapter_is_tens_of_mb():
    est = estimate_memory(7, "lora")
    # peft counts 39,976,960 for Llama-2-7B all-linear r=16; our shape is derived from 7B.
    assert within(est.trainable_params, 40_000_000, 0.1)
    assert 0.1 <= est.trainable_percent <= 1.0
    assert 10 <= est.adapter_mb <= 100
    attention = estimate_memory(7, "lora", target_modules="attention")
    assert within(attention.trainable_params, 8_388_608, 0.1)  # q and v only, Llama-2-7B


def test_lora_count_matches_peft_on_a_real_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = model.config
    shape = Shape(
        hidden=cfg.hidden_size,
        layers=cfg.num_hidden_layers,
        intermediate=cfg.intermediate_size,
        vocab=cfg.vocab_size,
        kv_hidden=cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads,
    )
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert estimates.lora_trainable_params(shape, 8, "all-linear") == trainable


def test_memory_grows_with_sequence_batch_and_rank():
    base = estimate_memory(7, "lora")
    assert estimate_memory(7, "lora", seq_len=4096).memory_gb > base.memory_gb
    assert estimate_memory(7, "lora", batch=8).memory_gb > base.memory_gb
    assert estimate_memory(7, "lora", rank=64).trainable_params == 4 * base.trainable_params
    assert estimate_memory(7, "lora", gradient_checkpointing=False).activations_gb > base.activations_gb
    dora = estimate_memory(7, "dora")
    assert dora.trainable_params > base.trainable_params and dora.memory_gb >= base.memory_gb


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(params_b=7, method="ia3"), "unknown method 'ia3'"),
        (dict(params_b=-1, method="lora"), "params_b must be positive"),
        (dict(params_b=7, method="lora", seq_len=0), "seq_len must be positive"),
        (dict(params_b=7, method="lora", target_modules="mlp"), "unknown target modules"),
    ],
)
def test_bad_estimate_inputs_are_named(kwargs, message):
    with pytest.raises(LadderError, match=message):
        estimate_memory(**kwargs)


def test_qlora_7b_on_1000_examples_takes_hours_not_days():
    # Seed 001: a QLoRA fine-tune of a 7B model on 1,000 examples takes 1-4 hours.
    result = estimate_training_time(7, "qlora", 1000, find_gpu("RTX4090"))
    assert 1 <= result["train_hours"] <= 4
    assert result["train_cost_usd"] == pytest.approx(result["train_hours"] * 0.70, abs=0.01)
    faster = estimate_training_time(7, "qlora", 1000, find_gpu("H100-80GB"))
    assert faster["train_hours"] < result["train_hours"]


def test_gpu_prices_are_a_setting():
    assert find_gpu("a100-80gb", {"A100-80GB": 1.2}).price_per_hour == 1.2
    with pytest.raises(LadderError, match="unknown GPU"):
        estimates.gpu_table({"TPUv5": 1.0})
    assert estimates.cheapest_fitting_gpu(16.4).memory_gb >= 16.4 * 1.1
    assert estimates.cheapest_fitting_gpu(500) is None


def test_forgetting_mix_matches_the_seed():
    assert forgetting_mix(5000) == {
        "task_examples": 5000, "general_examples": 2142, "total": 7142, "effective_task_ratio": 0.7,
    }
    assert forgetting_mix(1000, 0.0)["general_examples"] == 0
    with pytest.raises(LadderError, match="general_ratio"):
        forgetting_mix(10, 1.0)


def test_breakeven_volume_equalises_monthly_costs():
    kwargs = dict(
        prompt_tokens=2000, fine_tuned_prompt_tokens=200, output_tokens=100,
        input_price_per_1m=10, output_price_per_1m=30, training_cost_usd=1200, amortise_months=12,
    )
    result = breakeven(monthly_requests=50_000, **kwargs)
    # Per request: prompt 0.02 + 0.003; fine-tuned 0.002 + 0.003 -> saves $0.018; fixed $100/month.
    assert result.prompt_monthly_usd == pytest.approx(1150.0)
    assert result.fine_tuned_monthly_usd == pytest.approx(350.0)
    assert result.breakeven_requests_per_month == 5556
    at = breakeven(monthly_requests=result.breakeven_requests_per_month, **kwargs)
    assert at.fine_tuned_monthly_usd <= at.prompt_monthly_usd
    below = breakeven(monthly_requests=5000, **kwargs)
    assert below.cheaper == "prompting"
    assert result.payback_months == pytest.approx(1200 / 900, abs=0.01)


def test_breakeven_never_when_fine_tuning_does_not_save():
    result = breakeven(
        monthly_requests=1000, prompt_tokens=100, fine_tuned_prompt_tokens=100, output_tokens=10,
        input_price_per_1m=10, output_price_per_1m=10, training_cost_usd=50,
    )
    assert result.breakeven_requests_per_month is None and result.payback_months is None
    with pytest.raises(LadderError, match="monthly_requests must not be negative"):
        breakeven(-1, 1, 1, 1, 1, 1, 1)


def test_the_cpu_estimate_counts_what_a_cpu_job_holds():
    from bot.interview.estimates import estimate_cpu_memory

    smollm2 = Shape(hidden=576, layers=30, intermediate=1536, vocab=49152, kv_hidden=192)
    params = 134_515_008
    two, four = (estimate_cpu_memory(smollm2, params, "lora", 120, m) for m in (2, 4))
    # activations grow with the sequences per pass; weights, adapter state and runtime do not
    assert four.activations_gb == pytest.approx(2 * two.activations_gb, abs=0.02)
    assert four.weights_gb == two.weights_gb and four.memory_gb > two.memory_gb
    # the frozen linears are bf16 and the tied embedding fp32: about 0.33 GB for SmolLM2
    assert 0.30 < four.weights_gb < 0.36
    # eager attention makes a long sequence cost more than in proportion to its tokens
    long = estimate_cpu_memory(smollm2, params, "lora", 960, 4)
    assert long.activations_gb > 8 * four.activations_gb
    assert estimate_cpu_memory(smollm2, params, "qlora", 120, 4).weights_gb < four.weights_gb
    assert four.explanation.startswith("On a CPU") and four.batch == 4 and four.seq_len == 120
    with pytest.raises(LadderError, match="adapter methods"):
        estimate_cpu_memory(smollm2, params, "full", 120, 4)
