"""The LoRA / QLoRA / DoRA training recipe. It reads top to bottom: setup, train, save.

Loss is computed on the final assistant answer only (its tokens are found by applying the
base model's chat template with and without it), and only those positions go through the
output layer: the 49k-word vocabulary is never projected for prompt tokens. Examples are padded
per batch (or, with `packing`, packed best-fit-decreasing into max_length rows with TRL's
`pack_dataset`) and trained with transformers' Trainer and peft, in bf16 autocast where the
device has fast bf16.
Progress goes to `on_event` as plain dicts, so the caller decides where it lands (stdout for the
worker, SQLite for the queue, a chat thread for the team).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.config import RecipeConfig
from trainer.device import cpu_has_fast_bf16
from trainer.errors import LadderError
from trainer.formats import Example, read_dataset
from trainer.hub import resolve_base_model
from trainer.sequences import fit_to_length, tokenize_example

Event = dict[str, Any]
OOM_EXIT_CODE = 3


class OutOfMemory(LadderError):
    """CUDA ran out of memory; the message carries concrete suggestions."""


def run(config: RecipeConfig, on_event: Callable[[Event], None]) -> dict[str, Any]:
    """Train an adapter as `config` says; return its summary (also written to ladder.json).

    Resumes from the newest checkpoint in `output_dir/checkpoints` when one exists. Raises
    LadderError for bad data or an unloadable model, OutOfMemory when CUDA runs out of memory.
    """
    import torch
    from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

    # ---- setup -------------------------------------------------------------------------------
    on_event({"event": "config", "config": config.to_json_dict()})
    set_seed(config.seed)
    cuda = torch.cuda.is_available()
    bf16 = use_bf16(config.precision, cuda)
    model_dir, revision = resolve_base_model(config.base_model)
    checkpoints = Path(config.output_dir) / "checkpoints"
    resume = latest_checkpoint(checkpoints)
    if resume is not None:
        check_same_base(resume, model_dir)  # a job resumed on another base would mix two models
    tokenizer, model = load_base(model_dir, config.method, cuda, bf16, attention_for(config.attention, cuda))
    model = attach_adapter(model, config)
    fp32_sums = add_adapter_outputs_in_fp32(model) if bf16 and not cuda else 0
    micro = micro_batch_for(config.batch_size, cuda)
    accum = config.grad_accum * (config.batch_size // micro)  # the same sequences per optimizer step
    train_rows, val_rows, data_info = build_data(config)
    train_set, dropped = encode(train_rows, tokenizer, config.max_length)
    if not len(train_set):
        raise LadderError(f"every training example's answer is longer than max_length ({config.max_length} tokens); "
                          "raise max_length")
    if config.packing:
        from trl import pack_dataset

        # Best-fit-decreasing packing keeps every example whole and leaves almost no padding.
        train_set = pack_dataset(train_set, config.max_length, strategy="bfd")
    val_set, val_dropped = encode(val_rows, tokenizer, config.max_length) if val_rows else (None, 0)
    val_set = val_set if val_set is not None and len(val_set) else None
    collator = Collator(tokenizer.pad_token_id, flatten=uses_varlen_attention(model))
    # Optimizer steps of the run (as Trainer counts them, each of the WORLD_SIZE processes taking
    # its share of every batch): warmup and the five evaluations are spread over them.
    per_step = config.batch_size * config.grad_accum * int(os.environ.get("WORLD_SIZE", "1"))
    total_steps = config.max_steps or math.ceil(config.epochs * math.ceil(len(train_set) / per_step))
    eval_steps = config.eval_steps or max(1, math.ceil(total_steps / 5))
    data_info.update(train_rows_after_packing=len(train_set), attention=model.config._attn_implementation,
                     dropped_too_long=dropped + val_dropped, precision="bf16" if bf16 else "fp32",
                     optimizer_steps=total_steps, eval_steps=eval_steps)
    choices = device_choices(model, cuda, bf16, micro, accum, fp32_sums > 0)
    on_event({"event": "choices", **choices})
    on_event({"event": "data", **data_info})
    has_eval = val_set is not None
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=config.batch_size,  # no activations kept for a backward pass
        gradient_accumulation_steps=accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=max(1, round(config.warmup_ratio * total_steps)) if config.warmup_ratio else 0,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        bf16=bf16,
        use_cpu=not cuda,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,  # the collator needs completion_mask and seq_lengths
        dataloader_num_workers=0,
        prediction_loss_only=True,  # validation needs the loss, not the logits
    )
    reporter = ProgressReporter(on_event, collator)
    callbacks = [reporter, EvaluateLastStep()]
    if has_eval:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = AnswerLossTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=val_set,
                                data_collator=collator, callbacks=callbacks)

    # ---- train -------------------------------------------------------------------------------
    if resume is not None:
        on_event({"event": "resume", "checkpoint": resume.name, "step": int(resume.name.split("-")[-1])})
    started = time.time()
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(oom_advice(config)) from None
    seconds = time.time() - started

    # ---- save --------------------------------------------------------------------------------
    adapter_dir = Path(config.output_dir) / "adapter"
    trainer.save_model(str(adapter_dir))  # the best checkpoint when there was a validation set
    if not trainer.is_world_process_zero():  # under torchrun, one process writes the summary
        return {}
    metrics = summarise(trainer.state.log_history, reporter.train_tokens, seconds)
    metrics["resumed_from_step"] = int(resume.name.split("-")[-1]) if resume else None
    summary = {
        "config": config.to_json_dict(),
        "base_model": {"id": config.base_model, "path": str(model_dir), "revision": revision},
        "dataset": data_info,
        "choices": choices,
        "metrics": metrics,
        "adapter": str(adapter_dir),
        "device": "cuda" if cuda else "cpu",
    }
    (Path(config.output_dir) / "ladder.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    plot_losses(metrics, Path(config.output_dir) / "loss.png", title=f"{config.method} on {Path(config.base_model).name}")
    on_event({"event": "done", "metrics": metrics, "adapter": str(adapter_dir)})
    return summary


# -- setup helpers ----------------------------------------------------------------------------


def attention_for(attention: str, cuda: bool) -> str:
    """Return the attention kernel to train with: asked for, or (auto) by device. On a CPU the
    eager kernel is faster at short sequences (measured on SmolLM2 with 100-token tickets: 323
    against 231 tokens/s); on a GPU, sdpa's fused kernels are faster and lighter."""
    if attention != "auto":
        return attention
    return "sdpa" if cuda else "eager"


# Sequences per forward/backward pass on a CPU. Activations, not weights, fill a CPU's memory
# (about 1.2 MB per token on SmolLM2 in bf16 autocast), and 4 short tickets already keep 2 cores
# busy: a batch of 8 run as 2 x 4 with gradient accumulation trained at 271 against 269 tokens/s
# in 2.30 against 3.00 GB peak (10 steps), the same update (Trainer sums the loss over the whole
# batch). 4 x 2 saved 0.1 GB more but ran 15% slower: the matmuls get too small.
CPU_MICRO_BATCH = 4


def micro_batch_for(batch_size: int, cuda: bool) -> int:
    """Return the sequences per forward pass: the whole batch on a GPU; on a CPU the largest
    divisor of `batch_size` up to CPU_MICRO_BATCH (the rest is gradient accumulation)."""
    if cuda:
        return batch_size
    return max(n for n in range(1, min(batch_size, CPU_MICRO_BATCH) + 1) if batch_size % n == 0)


def device_choices(model, cuda: bool, bf16: bool, micro: int, accum: int, fp32_sums: bool) -> dict[str, Any]:
    """What the recipe picked for this device, as ladder.json records it."""
    import torch

    linear = next((m.weight.dtype for m in model.modules() if isinstance(m, torch.nn.Linear)
                   and not m.weight.requires_grad), None)
    return {"device": "cuda" if cuda else "cpu", "bf16_autocast": bf16 and not cuda,
            "precision": "bf16" if bf16 else "fp32", "attention": model.config._attn_implementation,
            "frozen_linear_dtype": str(linear).removeprefix("torch.") if linear is not None else None,
            "adapter_sum_fp32": fp32_sums, "micro_batch": micro, "grad_accum": accum, "answer_only_logits": True}


def store_frozen_linears_in_bf16(model) -> None:
    """Keep the frozen linear layers' weights in bf16 (a CPU under autocast): autocast would cast
    each to bf16 for every matmul anyway, so the result is the same, with half the weight memory
    and no per-step cast. Embeddings, norms and a tied output layer stay fp32."""
    import torch

    embedding = model.get_input_embeddings().weight
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight is not embedding:
            module.to(torch.bfloat16)
    # The fp32 weights were memory-mapped from the safetensors file, and every page read for the
    # cast stays resident while any tensor still maps the file: copy out what stays fp32, so the
    # mapping closes (0.4 GB less for the whole run on SmolLM2).
    for param in model.parameters():
        if param.dtype == torch.float32:
            param.data = param.data.clone()


def add_adapter_outputs_in_fp32(model) -> int:
    """Make each LoRA layer add its update to the frozen layer's output in fp32; return how many.

    Under bf16 autocast the frozen layer's output is bf16, and peft adds the adapter's small
    update to it in bf16: an update under about 1/256 of the output rounds away, so the forward
    pass barely sees what the adapter has learnt. Measured on SmolLM2 (10 steps, 20 held-out
    tickets): fp32 training scored 0.820, bf16 autocast 0.864, bf16 with the sum in fp32 0.823.
    Training only: a layer here is never merged and never mixes adapters in one batch.
    """
    import types

    from peft.tuners.lora.layer import Linear

    def forward(self, x, *args, **kwargs):
        result = self.base_layer(x, *args, **kwargs)
        for name in self.active_adapters:
            if name in self.lora_A:
                update = self.lora_B[name](self.lora_A[name](self.lora_dropout[name](x)))
                result = result.float() + update.float() * self.scaling[name]
        return result

    layers = [m for m in model.modules() if type(m) is Linear and not any(m.lora_variant.values())]
    for layer in layers:
        layer.forward = types.MethodType(forward, layer)
    return len(layers)


def load_base(model_dir: Path, method: str, cuda: bool, bf16: bool, attention: str = "sdpa"):
    """Return (tokenizer, model) ready for peft: 4-bit NF4 with double quantisation for QLoRA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise LadderError(f"the tokenizer in {model_dir} has no chat template; use an instruct/chat model")
    # On CUDA the frozen base is stored in bf16; on a CPU it loads in fp32, autocast runs the
    # matmuls in bf16 and the frozen linear layers are then stored in bf16 (the adapter trains in fp32).
    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype if cuda else torch.float32, "local_files_only": True,
                              "attn_implementation": attention}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",  # NormalFloat4: the QLoRA paper's data type for normal weights
            bnb_4bit_use_double_quant=True,  # quantise the quantisation constants too (~0.4 bit/param saved)
            bnb_4bit_compute_dtype=dtype,  # bf16 matmuls where the device is fast at them, else fp32
        )
        if cuda:
            kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError) as exc:
        raise LadderError(f"could not load the base model from {model_dir} ({type(exc).__name__}: {exc})") from None
    if bf16 and not cuda and method == "lora":  # DoRA normalises W + BA itself: it keeps fp32
        store_frozen_linears_in_bf16(model)
    return tokenizer, model


def use_bf16(precision: str, cuda: bool) -> bool:
    """Return whether to train in bf16 autocast: asked for, or (auto) where the device is fast
    at it: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if cuda:
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def check_same_base(checkpoint: Path, model_dir: Path) -> None:
    """Raise LadderError when `checkpoint` holds an adapter of another base model than `model_dir`
    (a job's base must not change between a run and its resume)."""
    config = checkpoint / "adapter_config.json"
    if not config.exists():
        return
    recorded = json.loads(config.read_text()).get("base_model_name_or_path")
    if recorded and Path(recorded).resolve() != Path(model_dir).resolve():
        raise LadderError(f"this job's checkpoints were trained on {recorded}, not {model_dir}; resume it on that base "
                          "model, or start a new job")


def attach_adapter(model, config: RecipeConfig):
    """Return the model with a fresh LoRA/DoRA adapter (k-bit preparation first for QLoRA)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    return get_peft_model(model, lora_config(config))


def lora_config(config: RecipeConfig):
    """Return peft's LoraConfig for the recipe (DoRA is LoRA with use_dora)."""
    from peft import LoraConfig

    targets = config.target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        use_dora=config.method == "dora",
        task_type="CAUSAL_LM",
    )


def _rows(examples: list[Example]) -> list[list[dict[str, str]]]:
    return [ex.messages for ex in examples]


def encode(rows: list[list[dict[str, str]]], tokenizer, max_length: int):
    """Return (Dataset of input_ids and completion_mask, examples dropped).

    The mask is 1 on the final answer's tokens (its end-of-turn token included). A sequence
    longer than `max_length` loses the start of its prompt, never its answer; an example whose
    answer alone does not fit is dropped and counted (`trainer.sequences`).
    """
    from datasets import Dataset

    ids, masks, dropped = [], [], 0
    for messages in rows:
        fitted = fit_to_length(*tokenize_example(tokenizer, messages), max_length)
        if fitted is None:
            dropped += 1
            continue
        tokens, answer_start = fitted
        ids.append(tokens)
        masks.append([0] * answer_start + [1] * (len(tokens) - answer_start))
    return Dataset.from_dict({"input_ids": ids, "completion_mask": masks}), dropped


def uses_varlen_attention(model) -> bool:
    """True when the attention kernel takes packed sequences flattened into one row (flash)."""
    return str(getattr(model.config, "_attn_implementation", "")).startswith("flash")


def _trainer_base():
    from transformers import Trainer

    return Trainer


class AnswerLossTrainer(_trainer_base()):
    """Trainer whose loss projects only the positions that predict an answer token.

    The model gets a boolean `logits_to_keep` mask, so its output layer (576 x 49k on SmolLM2)
    runs on the answer's few tokens instead of every prompt token; the loss is the same mean
    cross-entropy over answer tokens that the full logits give.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch
        import torch.nn.functional as F

        labels = inputs.pop("labels")
        targets = labels[..., 1:]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[..., :-1] = targets != -100  # position t predicts token t + 1
        outputs = model(**inputs, logits_to_keep=keep)
        logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
        total = F.cross_entropy(logits, targets[targets != -100], reduction="sum")
        # Summed over the whole accumulated batch when Trainer counts it, so every answer token
        # weighs the same however the batches fall.
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        loss = total / (num_items_in_batch if num_items_in_batch is not None else max(1, int(keep.sum())))
        return (loss, outputs) if return_outputs else loss


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class EvaluateLastStep(_callback_base()):
    """Evaluate and save at the final step too, so the best checkpoint is chosen from the whole
    run rather than the last multiple of eval_steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = True
        return control


class Collator:
    """Batches encoded rows; counts the real tokens it hands to the model.

    Packed rows carry `seq_lengths`: their position ids restart at each example, and with no
    attention mask transformers builds a block-diagonal causal mask per row (sdpa/eager), so
    packed examples never attend to each other. Flash kernels instead get all rows flattened
    into one sequence. Unpacked rows are padded to the longest in the batch.
    """

    def __init__(self, pad_token_id: int, flatten: bool = False):
        self.pad_token_id = pad_token_id
        self.flatten = flatten
        self.tokens = 0

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), -100, dtype=torch.long)
        real = torch.zeros((len(rows), longest), dtype=torch.long)
        positions = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            answer = torch.tensor(row["completion_mask"], dtype=torch.bool)
            labels[i, :n] = torch.where(answer, ids[i, :n], torch.tensor(-100))
            real[i, :n] = 1
            offset = 0
            for length in row.get("seq_lengths") or [n]:
                positions[i, offset:offset + length] = torch.arange(length)
                offset += length
            if longest > n:  # padding forms its own short "sequence" and is never a label
                positions[i, n:] = torch.arange(longest - n)
        self.tokens += int(real.sum())
        if "seq_lengths" not in rows[0]:
            return {"input_ids": ids, "labels": labels, "attention_mask": real}
        if self.flatten:
            keep = real.bool()
            return {"input_ids": ids[keep][None], "labels": labels[keep][None], "position_ids": positions[keep][None]}
        return {"input_ids": ids, "labels": labels, "position_ids": positions}


def build_data(config: RecipeConfig) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Return (train rows, validation rows, facts about the data) for the trainer.

    Raises LadderError when the training file has no usable examples.
    """
    import hashlib

    parsed = read_dataset(config.train_file)
    if not parsed.examples:
        raise LadderError(f"{config.train_file} has no usable examples; run `ladder data check` on it")
    rng = random.Random(config.seed)
    train = list(parsed.examples)
    if config.val_file:
        val = read_dataset(config.val_file).examples
    elif config.val_fraction > 0 and len(train) >= 20:
        rng.shuffle(train)
        cut = max(2, int(len(train) * config.val_fraction))
        val, train = train[:cut], train[cut:]
    else:
        val = []
    general = 0
    if config.general_file and config.general_ratio > 0:
        pool = read_dataset(config.general_file).examples
        # Seed 004: general = task * ratio / (1 - ratio), e.g. 5,000 task -> 2,142 general at 30%.
        wanted = int(len(train) * config.general_ratio / (1 - config.general_ratio))
        if len(pool) < wanted:
            raise LadderError(
                f"general data has {len(pool)} examples but a {config.general_ratio:.0%} mix needs {wanted}; "
                "add more or lower general_ratio"
            )
        picked = rng.sample(pool, wanted)
        general = len(picked)
        train = train + picked
        rng.shuffle(train)
    info = {
        "train_file": str(config.train_file),
        "sha256": hashlib.sha256(Path(config.train_file).read_bytes()).hexdigest(),
        "format": parsed.format,
        "train_examples": len(train),
        "val_examples": len(val),
        "general_examples": general,
        "skipped_lines": len(parsed.errors),
    }
    return _rows(train), _rows(val), info


def latest_checkpoint(folder: Path) -> Path | None:
    """Return the newest complete `checkpoint-N` folder, or None."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def oom_advice(config: RecipeConfig) -> str:
    """Return what to change after a CUDA out-of-memory error, most effective first."""
    tips = []
    if config.method != "qlora":
        tips.append("--method qlora (4-bit base weights)")
    if not config.gradient_checkpointing:
        tips.append("gradient checkpointing")
    if config.batch_size > 1:
        tips.append(f"batch size {max(1, config.batch_size // 2)} with grad_accum {config.grad_accum * 2}")
    if config.max_length > 256:
        tips.append(f"a shorter max_length ({config.max_length // 2} tokens)")
    return "the GPU ran out of memory during training; try " + ", ".join(tips or ["a smaller base model"])


# -- progress --------------------------------------------------------------------------------


class ProgressReporter(_callback_base()):
    """Turns Trainer callbacks into progress events: step/total, loss, val loss, tokens/s, ETA."""

    def __init__(self, on_event: Callable[[Event], None], collator: Collator):
        self.on_event = on_event
        self.collator = collator
        self.started = None
        self.first_step = 0
        self.loss = None
        self.last_emit = 0.0
        self._mark = 0
        self.eval_tokens = 0  # the collator also batches validation data; keep it out of tokens/s

    @property
    def train_tokens(self) -> int:
        """Real tokens trained on in this run (validation batches excluded)."""
        return self.collator.tokens - self.eval_tokens

    def on_evaluate(self, args, state, control, **kwargs):
        self.eval_tokens += self.collator.tokens - self._mark

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()
        self.first_step = state.global_step
        self.on_event({"event": "start", "step": state.global_step, "total": state.max_steps})

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.loss = float(logs["loss"])
        if "eval_loss" in logs:
            self.on_event({"event": "eval", "step": state.global_step, "val_loss": float(logs["eval_loss"])})

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = self.collator.tokens
        now = time.time()
        if now - self.last_emit < 1.0 and state.global_step < state.max_steps:
            return
        self.last_emit = now
        elapsed = max(now - (self.started or now), 1e-9)
        done = state.global_step - self.first_step
        rate = done / elapsed if done else 0.0
        remaining = state.max_steps - state.global_step
        self.on_event({
            "event": "progress",
            "step": state.global_step,
            "total": state.max_steps,
            "loss": self.loss,
            "tokens_per_s": round(self.train_tokens / elapsed, 1) if self.train_tokens else None,
            "eta_s": round(remaining / rate, 1) if rate else None,
            "epoch": round(state.epoch or 0.0, 3),
        })

    def on_save(self, args, state, control, **kwargs):
        self.on_event({"event": "checkpoint", "step": state.global_step})


def summarise(log_history: list[dict[str, Any]], tokens: int, seconds: float) -> dict[str, Any]:
    """Return loss curves and headline numbers; `tokens` counts the real tokens trained on in
    this run and `seconds` its wall time."""
    train = [[int(e["step"]), round(float(e["loss"]), 5)] for e in log_history if "loss" in e and "step" in e]
    val = [[int(e["step"]), round(float(e["eval_loss"]), 5)] for e in log_history if "eval_loss" in e]
    final = next((e for e in reversed(log_history) if "train_runtime" in e), {})
    return {
        "train_loss": train,
        "val_loss": val,
        "best_val_loss": min((v for _, v in val), default=None),
        "final_train_loss": train[-1][1] if train else None,
        "steps": train[-1][0] if train else 0,
        "train_tokens": int(tokens),
        "train_runtime_s": round(float(final.get("train_runtime", seconds)), 2),
        "tokens_per_s": round(tokens / float(final.get("train_runtime", seconds)), 1) if tokens else None,
    }


def plot_losses(metrics: dict[str, Any], path: Path, title: str) -> Path:
    """Draw the training and validation loss curves to a PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if metrics["train_loss"]:
        steps, losses = zip(*metrics["train_loss"], strict=True)
        ax.plot(steps, losses, label="train loss", color="#4C72B0")
    if metrics["val_loss"]:
        steps, losses = zip(*metrics["val_loss"], strict=True)
        ax.plot(steps, losses, "o-", label="validation loss", color="#DD8452")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


