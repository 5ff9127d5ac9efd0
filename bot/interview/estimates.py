"""Estimates for the interview card and `ladder estimate` / `ladder breakeven`.

Everything here is a documented formula, not a lookup, so the card can explain its numbers.
Units: parameters in absolute counts, memory in decimal GB (1e9 bytes), time in hours, money in
US dollars. Reference points from the seeds, which the tests pin:

- 7B full fine-tuning: seed 001 says ~112 GB, seeds 000/004 say ~56 GB. Mixed-precision AdamW
  keeps bf16 weights (2 B) + bf16 gradients (2 B) + an fp32 master copy (4 B) + two fp32 Adam
  moments (8 B) = 16 bytes per parameter = 112 GB for 7B before activations. The 56 GB figure is
  "4 x the fp16 weights" (8 B/param): pure 16-bit weights, gradients and moments with no fp32
  master copy, which is numerically fragile; it is what 8-bit optimisers get close to.
- 7B LoRA: about 16 GB (seeds 000, 004: "fine-tune a 7B model on a single GPU with 16 GB").
- 7B QLoRA: about 6 GB (seed 004 prints 5.5 GB; seed 001: fits an 8 GB consumer GPU).
- 70B QLoRA: fits a single 48 GB GPU (seeds 000, 001).
- LoRA trains 0.1-1% of the parameters (seed 000); all-linear r=16 on a 7B Llama is ~40M.
- QLoRA of a 7B model on 1,000 examples: 1-4 hours and $2-8 of cloud compute (seed 001).
- Forgetting: mix 30% general data, 70% task data (seed 004): 5,000 task -> 2,142 general.
- Break-even of fine-tuning against a long prompt: seed 004, exercise 14.1.3.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from bot.core.errors import LadderError

Method = Literal["full", "lora", "qlora", "dora"]
METHODS: tuple[str, ...] = ("full", "lora", "qlora", "dora")

GB = 1e9  # decimal gigabytes, as GPU vendors and the seeds quote memory
DEFAULT_SEQ_LEN = 1024  # tokens; covers most instruction pairs, long documents need 2048+

# Bytes per parameter for each part of the training state.
BF16 = 2.0
FP32 = 4.0
NF4_WITH_DOUBLE_QUANT = 0.5 + 0.127 / 8  # 4-bit weights + double-quantised block constants
ADAM_STATE_BYTES = 2 * FP32  # first and second moments, fp32
TRAINABLE_BYTES = FP32 + FP32 + ADAM_STATE_BYTES  # fp32 weight + grad + moments = 16 B

CUDA_OVERHEAD_GB = 1.0  # CUDA context, kernels and allocator slack; observed 0.5-1.5 GB
LLAMA_MLP_RATIO = 2.6875  # intermediate / hidden in Llama-style SwiGLU MLPs (11008 / 4096)


@dataclass(frozen=True)
class Shape:
    """Transformer shape, derived from the parameter count unless given."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv_hidden: int | None = None  # k/v projection width under grouped-query attention

    @property
    def kv(self) -> int:
        return self.kv_hidden or self.hidden

    @classmethod
    def from_params(cls, params: float, vocab: int = 32_000) -> "Shape":
        """Return a Llama-like shape for `params` parameters.

        Llama-style blocks hold about 12·h² parameters (4h² attention + 3·h·2.69h MLP) and keep
        depth ≈ h/128 (7B: h=4096, 32 layers; 13B: 5120, 40), so params ≈ 12·h³/128.
        """
        hidden = (params * 128 / 12) ** (1 / 3)
        hidden = max(64, int(round(hidden / 64) * 64))
        layers = max(1, round(hidden / 128))
        return cls(hidden, layers, int(hidden * LLAMA_MLP_RATIO), vocab)


def shape_from_config(config: dict) -> tuple[Shape, float]:
    """Return (shape, parameter count) from a Hugging Face config.json of a Llama-style model."""
    h = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    i = int(config.get("intermediate_size") or 4 * h)
    vocab = int(config.get("vocab_size") or 32_000)
    heads = int(config.get("num_attention_heads") or max(1, h // 64))
    kv = int(config.get("num_key_value_heads") or heads) * (h // heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # attention, MLP, two norms
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    return Shape(h, layers, i, vocab, kv), float(per_layer * layers + embeddings + h)


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory for one method, with its breakdown (GB) and the adapter's size."""

    method: str
    params_b: float
    seq_len: int
    batch: int
    rank: int | None
    target_modules: str | None
    gradient_checkpointing: bool
    trainable_params: int
    trainable_percent: float
    adapter_mb: float | None
    weights_gb: float
    trainable_state_gb: float
    activations_gb: float
    overhead_gb: float
    memory_gb: float
    explanation: str

    def to_dict(self) -> dict:
        """Return the estimate as a JSON-able dict."""
        return asdict(self)


def lora_trainable_params(shape: Shape, rank: int, target_modules: str) -> int:
    """Return LoRA's trainable parameter count: r·(d_in + d_out) per adapted matrix.

    `target_modules` is "all-linear" (q, k, v, o, gate, up, down: the recipe's default) or
    "attention" (q and v only, the original LoRA paper's choice). Shapes derived from a
    parameter count assume k/v as wide as q; pass `kv_hidden` for grouped-query attention.
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv
    if target_modules == "all-linear":
        per_layer = 2 * (h + h) + 2 * (h + kv) + 3 * (h + i)
    elif target_modules == "attention":
        per_layer = (h + h) + (h + kv)
    else:
        raise LadderError(f"unknown target modules {target_modules!r}; use all-linear or attention")
    return rank * per_layer * shape.layers


def activation_gb(shape: Shape, seq_len: int, batch: int, checkpointing: bool) -> float:
    """Return activation memory in GB for one micro-batch, with fused (sdpa/flash) attention.

    Korthikanti et al. (2022): a transformer layer stores about 34·s·b·h bytes of bf16
    activations when attention scores are not materialised. With gradient checkpointing only
    each layer's input (2·s·b·h bytes) is kept, plus one layer being recomputed. The fp32
    logits and their gradient add 2·4·s·b·vocab bytes.
    """
    tokens = seq_len * batch
    per_layer = 34 * tokens * shape.hidden
    if checkpointing:
        layers = 2 * tokens * shape.hidden * shape.layers + per_layer
    else:
        layers = per_layer * shape.layers
    logits = 2 * FP32 * tokens * shape.vocab
    return (layers + logits) / GB


def estimate_memory(
    params_b: float,
    method: str,
    seq_len: int = DEFAULT_SEQ_LEN,
    batch: int = 1,
    rank: int = 16,
    target_modules: str = "all-linear",
    gradient_checkpointing: bool = True,
    vocab: int = 32_000,
    shape: Shape | None = None,
) -> MemoryEstimate:
    """Return the training GPU memory estimate for `method` on a `params_b`-billion model.

    `shape` gives the real architecture (from config.json) instead of one derived from the
    size. Raises LadderError for an unknown method or a non-positive size, length, batch or rank.
    """
    if method not in METHODS:
        raise LadderError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    for name, value in (("params_b", params_b), ("seq_len", seq_len), ("batch", batch), ("rank", rank)):
        if value <= 0:
            raise LadderError(f"{name} must be positive, got {value}")
    params = params_b * 1e9
    shape = shape or Shape.from_params(params, vocab)
    activations = activation_gb(shape, seq_len, batch, gradient_checkpointing)
    if method == "full":
        trainable = int(params)
        weights = params * BF16 / GB
        # bf16 gradients + fp32 master weights + fp32 Adam moments: 2 + 4 + 8 = 14 B/param.
        state = params * (BF16 + FP32 + ADAM_STATE_BYTES) / GB
        adapter_mb = None
        explanation = (
            "Mixed-precision AdamW: bf16 weights and gradients (2+2 B), an fp32 master copy (4 B) "
            "and two fp32 Adam moments (8 B) = 16 bytes per parameter, plus activations. The 56 GB "
            "often quoted for 7B assumes 8 bytes per parameter (no fp32 master copy, 16-bit "
            "optimiser states), which is fragile in practice."
        )
        rank_used, targets = None, None
    else:
        trainable = lora_trainable_params(shape, rank, target_modules)
        if method == "dora":
            # DoRA adds one magnitude per output row of every adapted matrix.
            trainable += _adapted_output_rows(shape, target_modules)
        bytes_per_weight = NF4_WITH_DOUBLE_QUANT if method == "qlora" else BF16
        # Embeddings and the LM head stay bf16 even under 4-bit quantisation.
        embed_params = 2 * shape.vocab * shape.hidden
        weights = ((params - embed_params) * bytes_per_weight + embed_params * BF16) / GB
        state = trainable * TRAINABLE_BYTES / GB
        if method == "dora":
            # DoRA normalises W + BA each step: one transient bf16 copy of the largest matrix.
            activations += shape.hidden * shape.intermediate * BF16 / GB
        adapter_mb = trainable * BF16 / 1e6
        base = "4-bit NF4 (double quantisation)" if method == "qlora" else "bf16"
        explanation = (
            f"Frozen {base} base weights, {trainable / 1e6:.1f}M trainable adapter parameters at "
            "16 bytes each (fp32 weight, gradient and two Adam moments), activations"
            + (" with gradient checkpointing" if gradient_checkpointing else "")
            + f", and {CUDA_OVERHEAD_GB:.0f} GB of CUDA overhead."
        )
        rank_used, targets = rank, target_modules
    total = weights + state + activations + CUDA_OVERHEAD_GB
    return MemoryEstimate(
        method=method,
        params_b=params_b,
        seq_len=seq_len,
        batch=batch,
        rank=rank_used,
        target_modules=targets,
        gradient_checkpointing=gradient_checkpointing,
        trainable_params=trainable,
        trainable_percent=round(100 * trainable / params, 3),
        adapter_mb=None if adapter_mb is None else round(adapter_mb, 1),
        weights_gb=round(weights, 2),
        trainable_state_gb=round(state, 2),
        activations_gb=round(activations, 2),
        overhead_gb=CUDA_OVERHEAD_GB,
        memory_gb=round(total, 1),
        explanation=explanation,
    )


def _adapted_output_rows(shape: Shape, target_modules: str) -> int:
    h, i, kv = shape.hidden, shape.intermediate, shape.kv
    per_layer = (2 * h + 2 * kv + 2 * i + h) if target_modules == "all-linear" else h + kv
    return per_layer * shape.layers


# -- GPUs, training time and cost -----------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """One GPU model: memory (GB), dense bf16 tensor TFLOP/s and a default hourly price (USD)."""

    name: str
    memory_gb: float
    bf16_tflops: float
    price_per_hour: float


# Dense (no sparsity) bf16 figures from vendor datasheets; prices are typical on-demand cloud
# rates and only defaults: override them with LADDER_GPU_PRICES.
GPUS: tuple[Gpu, ...] = (
    Gpu("T4", 16, 65, 0.35),
    Gpu("L4", 24, 121, 0.80),
    Gpu("A10G", 24, 125, 1.00),
    Gpu("RTX4090", 24, 165, 0.70),
    Gpu("A6000", 48, 155, 0.80),
    Gpu("L40S", 48, 362, 1.20),
    Gpu("A100-40GB", 40, 312, 1.50),
    Gpu("A100-80GB", 80, 312, 1.90),
    Gpu("H100-80GB", 80, 989, 3.00),
    Gpu("H200", 141, 989, 4.00),
)

# Fraction of peak a fine-tuning run sustains. Calibrated so a 7B QLoRA on 1,000 examples lands in
# seed 001's "1-4 hours"; packed, large-batch runs reach 0.3-0.4, padded small batches less.
MODEL_FLOPS_UTILISATION = 0.15
QLORA_SLOWDOWN = 1.5  # dequantising 4-bit weights on every matmul costs about a third more time
SETUP_HOURS = 0.25  # loading the model, evaluation passes and saving, per job
DEFAULT_TOKENS_PER_EXAMPLE = 512  # prompt + answer tokens; measure yours with the dataset doctor
DEFAULT_EPOCHS = 3  # seeds: 1-3 epochs is typical; more risks forgetting


def gpu_table(prices: dict[str, float] | None = None) -> list[Gpu]:
    """Return the GPU table with `prices` (name -> USD/hour) overriding the defaults."""
    prices = prices or {}
    unknown = set(prices) - {g.name for g in GPUS}
    if unknown:
        raise LadderError(
            f"LADDER_GPU_PRICES names unknown GPU(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(g.name for g in GPUS)}"
        )
    return [Gpu(g.name, g.memory_gb, g.bf16_tflops, prices.get(g.name, g.price_per_hour)) for g in GPUS]


def find_gpu(name: str, prices: dict[str, float] | None = None) -> Gpu:
    """Return the GPU called `name` (case-insensitive); raise LadderError listing the known ones."""
    for gpu in gpu_table(prices):
        if gpu.name.lower() == name.lower():
            return gpu
    raise LadderError(f"unknown GPU {name!r}; known: {', '.join(g.name for g in GPUS)}")


HEADROOM = 1.1  # keep 10% of GPU memory free: allocator fragmentation and eval batches


# Training on a CPU (the recipe's CPU path: bf16 autocast, frozen linear layers stored in bf16,
# embeddings fp32, eager attention, logits for answer tokens only), calibrated against the peak
# resident memory of `ladder train` runs on SmolLM2-135M, 2 cores, the sample's tickets (at most
# 120 tokens): 2 sequences per pass 1.55 GB measured (1.51 estimated), 4 per pass 1.97-2.20 GB
# (2.06), 8 per pass 3.00 GB (3.16).
CPU_RUNTIME_GB = 0.55  # Python with torch, transformers, peft and trl imported, before the model
CPU_SAVED_BYTES = 116  # saved for backward per token, per layer, per hidden unit (bf16 and fp32 copies)
CPU_ATTENTION_BYTES = 8  # eager attention: bf16 scores and fp32 probabilities per head, query and key


def estimate_cpu_memory(shape: Shape, params: float, method: str, tokens: int, micro_batch: int,
                        rank: int = 16, target_modules: str = "all-linear") -> MemoryEstimate:
    """Return the peak RAM of a LoRA/QLoRA job on a CPU: `micro_batch` sequences per forward
    pass (the rest of a batch is gradient accumulation) of up to `tokens` tokens each (the
    longest example: the batch it lands in is padded to it)."""
    if method not in ("lora", "qlora", "dora"):
        raise LadderError(f"the CPU estimate covers adapter methods (lora, qlora, dora), not {method!r}")
    for name, value in (("tokens", tokens), ("micro_batch", micro_batch), ("rank", rank)):
        if value <= 0:
            raise LadderError(f"{name} must be positive, got {value}")
    trainable = lora_trainable_params(shape, rank, target_modules)
    embed_params = shape.vocab * shape.hidden  # tied embeddings stay fp32 on a CPU
    frozen = (params - embed_params) * (NF4_WITH_DOUBLE_QUANT if method == "qlora" else BF16)
    weights = (frozen + embed_params * FP32) / GB
    state = trainable * TRAINABLE_BYTES / GB
    heads = max(1, shape.hidden // 64)
    per_sequence = (tokens * shape.hidden * shape.layers * CPU_SAVED_BYTES
                    + heads * tokens * tokens * shape.layers * CPU_ATTENTION_BYTES)
    activations = micro_batch * per_sequence / GB
    total = CPU_RUNTIME_GB + weights + state + activations
    return MemoryEstimate(
        method=method, params_b=params / 1e9, seq_len=tokens, batch=micro_batch, rank=rank,
        target_modules=target_modules, gradient_checkpointing=False, trainable_params=trainable,
        trainable_percent=round(100 * trainable / params, 3), adapter_mb=round(trainable * BF16 / 1e6, 1),
        weights_gb=round(weights, 2), trainable_state_gb=round(state, 2), activations_gb=round(activations, 2),
        overhead_gb=CPU_RUNTIME_GB, memory_gb=round(total, 2),
        explanation=(f"On a CPU: {CPU_RUNTIME_GB} GB for Python and the training libraries, the frozen weights "
                     f"({'4-bit' if method == 'qlora' else 'bf16'} linear layers, fp32 embeddings), "
                     f"{trainable / 1e6:.1f}M adapter parameters at 16 bytes, and the activations of "
                     f"{micro_batch} sequence(s) of {tokens} tokens per pass."),
    )


def fits(memory_gb: float, gpu_memory_gb: float) -> bool:
    """Return True when a job estimated at `memory_gb` fits a GPU of `gpu_memory_gb`."""
    return memory_gb * HEADROOM <= gpu_memory_gb


def cheapest_fitting_gpu(memory_gb: float, prices: dict[str, float] | None = None) -> Gpu | None:
    """Return the cheapest GPU whose memory holds `memory_gb` with 10% headroom, or None."""
    fitting = [g for g in gpu_table(prices) if fits(memory_gb, g.memory_gb)]
    return min(fitting, key=lambda g: (g.price_per_hour, -g.bf16_tflops)) if fitting else None


def gpu_like(memory_gb: float, prices: dict[str, float] | None = None) -> Gpu:
    """Return the table GPU closest in memory to `memory_gb` (the cheapest on a tie)."""
    return min(gpu_table(prices), key=lambda g: (abs(g.memory_gb - memory_gb), g.price_per_hour))


def estimate_training_time(
    params_b: float,
    method: str,
    examples: int,
    gpu: Gpu,
    tokens_per_example: int = DEFAULT_TOKENS_PER_EXAMPLE,
    epochs: float = DEFAULT_EPOCHS,
    gradient_checkpointing: bool = True,
) -> dict:
    """Return hours and dollars to train `examples` for `epochs` on one `gpu`.

    FLOPs per trained token: forward 2P, backward 4P for full fine-tuning; LoRA skips the frozen
    weights' gradients (2P) but still back-propagates through them (2P); gradient
    checkpointing re-runs the forward (+2P). Time = FLOPs / (peak x utilisation), x1.5 for
    QLoRA's dequantisation, plus a fixed setup time.
    """
    if examples <= 0:
        raise LadderError(f"examples must be positive, got {examples}")
    tokens = examples * tokens_per_example * epochs
    per_token = 6.0 if method == "full" else 4.0
    if gradient_checkpointing:
        per_token += 2.0
    flops = per_token * params_b * 1e9 * tokens
    seconds = flops / (gpu.bf16_tflops * 1e12 * MODEL_FLOPS_UTILISATION)
    if method == "qlora":
        seconds *= QLORA_SLOWDOWN
    hours = seconds / 3600 + SETUP_HOURS
    return {
        "gpu": gpu.name,
        "train_tokens": int(tokens),
        "train_hours": round(hours, 2),
        "train_cost_usd": round(hours * gpu.price_per_hour, 2),
        "gpu_price_per_hour": gpu.price_per_hour,
        "assumptions": (
            f"{tokens_per_example} tokens/example, {epochs:g} epochs, "
            f"{MODEL_FLOPS_UTILISATION:.0%} of {gpu.bf16_tflops:g} TFLOP/s, "
            f"${gpu.price_per_hour:.2f}/h"
        ),
    }


# -- break-even of fine-tuning against a long prompt ---------------------------------------------


@dataclass(frozen=True)
class BreakEven:
    """Monthly cost of a long prompt against a fine-tuned short prompt (seed 004, ex. 14.1.3)."""

    monthly_requests: int
    prompt_monthly_usd: float
    fine_tuned_monthly_usd: float
    monthly_savings_usd: float
    breakeven_requests_per_month: int | None
    payback_months: float | None
    cheaper: str

    def to_dict(self) -> dict:
        """Return the comparison as a JSON-able dict."""
        return asdict(self)


def breakeven(
    monthly_requests: int,
    prompt_tokens: int,
    fine_tuned_prompt_tokens: int,
    output_tokens: int,
    input_price_per_1m: float,
    output_price_per_1m: float,
    training_cost_usd: float,
    fine_tuned_input_price_per_1m: float | None = None,
    fine_tuned_output_price_per_1m: float | None = None,
    hosting_monthly_usd: float = 0.0,
    amortise_months: int = 12,
) -> BreakEven:
    """Return monthly costs of both approaches and the volume at which fine-tuning pays off.

    Prices are USD per 1M tokens, as API price lists and the card give them.
    prompt cost/month = R·(prompt·in + out·out_price) / 1e6
    fine-tuned/month  = R·(short·ft_in + out·ft_out) / 1e6 + training/amortise + hosting
    Break-even R* = fixed monthly cost / per-request saving; None when fine-tuning never saves.
    Raises LadderError on negative inputs.
    """
    values = dict(
        monthly_requests=monthly_requests, prompt_tokens=prompt_tokens,
        fine_tuned_prompt_tokens=fine_tuned_prompt_tokens, output_tokens=output_tokens,
        input_price_per_1m=input_price_per_1m, output_price_per_1m=output_price_per_1m,
        training_cost_usd=training_cost_usd, hosting_monthly_usd=hosting_monthly_usd,
    )
    for name, value in values.items():
        if value < 0:
            raise LadderError(f"{name} must not be negative, got {value}")
    if amortise_months <= 0:
        raise LadderError(f"amortise_months must be positive, got {amortise_months}")
    ft_in = input_price_per_1m if fine_tuned_input_price_per_1m is None else fine_tuned_input_price_per_1m
    ft_out = output_price_per_1m if fine_tuned_output_price_per_1m is None else fine_tuned_output_price_per_1m
    per_request_prompt = (prompt_tokens * input_price_per_1m + output_tokens * output_price_per_1m) / 1e6
    per_request_ft = (fine_tuned_prompt_tokens * ft_in + output_tokens * ft_out) / 1e6
    fixed = training_cost_usd / amortise_months + hosting_monthly_usd
    prompt_monthly = monthly_requests * per_request_prompt
    ft_monthly = monthly_requests * per_request_ft + fixed
    saving_per_request = per_request_prompt - per_request_ft
    breakeven_requests = math.ceil(fixed / saving_per_request) if saving_per_request > 0 else None
    variable_savings = monthly_requests * saving_per_request - hosting_monthly_usd
    payback = (
        round(training_cost_usd / variable_savings, 2) if variable_savings > 0 else None
    )
    return BreakEven(
        monthly_requests=monthly_requests,
        prompt_monthly_usd=round(prompt_monthly, 2),
        fine_tuned_monthly_usd=round(ft_monthly, 2),
        monthly_savings_usd=round(prompt_monthly - ft_monthly, 2),
        breakeven_requests_per_month=breakeven_requests,
        payback_months=payback,
        cheaper="fine_tune" if ft_monthly < prompt_monthly else "prompting",
    )


# -- forgetting mitigation -------------------------------------------------------------------------


def forgetting_mix(task_examples: int, general_ratio: float = 0.3) -> dict:
    """Return how many general examples to mix with `task_examples` (seed 004).

    general = task · general_ratio / (1 - general_ratio); 5,000 task examples at 30% -> 2,142.
    Raises LadderError unless 0 <= general_ratio < 1 and task_examples >= 0.
    """
    if not 0 <= general_ratio < 1:
        raise LadderError(f"general_ratio must be at least 0 and below 1, got {general_ratio}")
    if task_examples < 0:
        raise LadderError(f"task_examples must not be negative, got {task_examples}")
    general = int(task_examples * general_ratio / (1 - general_ratio))
    total = task_examples + general
    return {
        "task_examples": task_examples,
        "general_examples": general,
        "total": total,
        "effective_task_ratio": round(task_examples / total, 3) if total else None,
    }
