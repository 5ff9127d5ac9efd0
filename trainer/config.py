"""The training job's configuration: validated, with help and a unit on every field.

The resolved config is saved as sorted JSON next to every adapter (ladder.json), so an adapter
always says exactly how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainer.errors import LadderError


class RecipeConfig(BaseModel):
    """Everything the LoRA/QLoRA/DoRA recipe needs; defaults follow the seeds."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # What to train
    base_model: str = Field(..., description="Base model: a local folder or a Hugging Face id already in the cache.")
    method: Literal["lora", "qlora", "dora"] = Field("lora", description="lora (production default), qlora (4-bit base, least memory) or dora (weight-decomposed LoRA).")
    train_file: Path = Field(..., description="Training data in any supported format (JSONL or CSV).")
    val_file: Path | None = Field(None, description="Validation data; when unset, val_fraction of the training data is held out.")
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of the training data held out for validation when there is no val_file; 0 trains without validation or early stopping.")
    output_dir: Path = Field(..., description="Where checkpoints, the adapter, ladder.json and loss.png are written.")
    general_file: Path | None = Field(None, description="General-purpose chat data mixed in to limit forgetting (seed 004).")
    general_ratio: float = Field(0.0, ge=0.0, lt=0.9, description="Share of general data in the mix; seed 004 suggests 0.3.")

    # LoRA adapter
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank: higher = more capacity and more memory.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r); 2x the rank is the usual choice.")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter input: regularisation against overfitting (0.05-0.1 on small noisy data), at about 40% of the step time on a CPU; validation, early stopping and weight decay guard already.")
    target_modules: str = Field("all-linear", description="Layers to adapt: all-linear (best quality per parameter) or a comma list like q_proj,v_proj.")

    # Optimisation
    learning_rate: float = Field(2e-4, gt=0, le=1e-2, description="Peak learning rate. Adapters start at zero and need ~10x full fine-tuning's 2e-5 (seed 004); lower it if the loss jumps.")
    epochs: float = Field(3.0, gt=0, le=10, description="Passes over the data; 1-3 is typical (seed 004), more risks overfitting and forgetting; small datasets need the third.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(4, ge=1, description="Sequences per step per device, padded to the longest in the batch (packed blocks with packing); more = steadier steps and more memory, but fewer steps per epoch, which small datasets need.")
    grad_accum: int = Field(1, ge=1, description="Steps to accumulate before an update: effective batch = batch_size x grad_accum.")
    weight_decay: float = Field(0.01, ge=0, description="L2 regularisation on the adapter weights (seed 004: 0.01).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping threshold (seed 004: 1.0): stops one bad batch from wrecking the run.")
    lr_scheduler: Literal["linear", "cosine"] = Field("linear", description="How the learning rate decays after warmup: linear (to zero at the last step) or cosine.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the optimizer steps spent ramping the learning rate up from zero (at least one step).")
    max_length: int = Field(1024, ge=16, le=131072, description="Tokens per sequence (and per packed block); longer examples are truncated.")
    packing: bool = Field(False, description="Pack short examples into max_length blocks: no padding, but far fewer optimizer steps (1,000 short examples fill about 80 blocks), which small datasets need to learn; on for long examples and big datasets.")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast where the device has fast bf16 (CUDA with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere; the adapter's master weights stay fp32. bf16 is about 2x faster with the same loss.")
    attention: Literal["auto", "eager", "sdpa"] = Field("auto", description="Attention kernel: auto picks eager on a CPU (on short examples about 1.4x the tokens/s of sdpa, same loss) and sdpa on a GPU (fused, far less activation memory on long sequences).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: ~30% slower, far less activation memory.")

    # Evaluation and checkpoints
    eval_steps: int | None = Field(None, ge=1, description="Compute validation loss (and checkpoint) every N steps; unset: five times over the run. The last step is always evaluated, so the best checkpoint is chosen from the whole run.")
    early_stopping_patience: int = Field(3, ge=1, description="Evaluations without improvement before training stops; the best checkpoint is kept.")
    seed: int = Field(42, description="Seed for data order, splits and adapter init: same data and config, same adapter.")

    @model_validator(mode="after")
    def _consistent(self) -> "RecipeConfig":
        if self.general_ratio > 0 and self.general_file is None:
            raise ValueError("general_ratio needs general_file: the general data to mix in")
        return self

    def to_json_dict(self) -> dict:
        """Return the config as plain JSON values (paths as strings)."""
        return self.model_dump(mode="json")


def load_config(data: dict) -> RecipeConfig:
    """Return a validated config; raise LadderError naming the first bad field and the fix."""
    try:
        return RecipeConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "config"
        description = RecipeConfig.model_fields.get(field)
        hint = f" ({description.description})" if description is not None else ""
        raise LadderError(f"training setting {field!r} is invalid: {error['msg']}{hint}") from None
