"""Settings: every field is a `LADDER_*` environment variable, also read from a `.env` file.

The README's settings table is checked against this model by tests, so add help text to each
field you add. Secrets are `SecretStr`: they print as `**********` and never reach logs or chat.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainer.catalogue import DEFAULT_BASE, DEFAULT_EMBEDDER, models_home


class Settings(BaseSettings):
    """Ladder's resolved configuration."""

    model_config = SettingsConfigDict(
        env_prefix="LADDER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,  # Settings(slack_bot_token=...) in code; SLACK_BOT_TOKEN or LADDER_... from the environment
        env_ignore_empty=True,  # `LADDER_DISCORD_GUILD=` (as in deploy/.env.example) means unset, not invalid
    )

    home: Path = Field(
        default_factory=lambda: default_home(),
        description="Folder that holds all state: the SQLite store, Chroma, adapters and logs. Defaults to "
        "the user's data folder ($XDG_DATA_HOME/ladder, else ~/.local/share/ladder), so every command "
        "finds the same state from any folder.",
    )
    log_level: str = Field(
        "INFO",
        description="Log level for the log file under LADDER_HOME/logs (DEBUG, INFO, WARNING, ERROR).",
    )
    user: str | None = Field(
        None,
        description="Who you are in `ladder chat` and the CLI; defaults to your login name.",
    )
    models: Path = Field(
        default_factory=lambda: models_home(),
        description="Models cache shared by every LADDER_HOME, where `ladder models pull` puts the catalogue's "
        "models ($XDG_CACHE_HOME/ladder/models, else ~/.cache/ladder/models).",
    )
    embedder: str = Field(
        DEFAULT_EMBEDDER,
        description="Embedding model for RAG: a catalogue name (`ladder models list`), a local folder, a Hugging Face "
        "id already in the local cache, or `lexical` for the built-in offline embedder (also the fallback).",
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (from `chroma run`); unset uses an embedded Chroma under LADDER_HOME."
    )
    chunk_size: int = Field(800, ge=100, le=8000, description="RAG chunk size in characters; bigger keeps more context per passage, smaller retrieves more precisely.")
    chunk_overlap: int = Field(120, ge=0, le=2000, description="Characters shared by neighbouring chunks so sentences are not cut in half.")
    max_document_mb: float = Field(20.0, gt=0, description="Largest document accepted for RAG, in MB; bigger files are refused by name.")
    retrieval: Literal["hybrid", "dense"] = Field(
        "hybrid", description="RAG retrieval: `hybrid` fuses BM25 and embedding ranks (reciprocal rank fusion); `dense` uses embeddings only."
    )
    inference_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (e.g. http://localhost:8000/v1) that writes RAG answers; unset returns passages only."
    )
    inference_model: str = Field("base", description="Model name sent to LADDER_INFERENCE_URL for base answers.")
    inference_api_key: SecretStr | None = Field(None, description="API key for LADDER_INFERENCE_URL, if it needs one; `ladder serve models` requires it from every client, and needs one to listen beyond this machine. Secret.")
    allow_runtime_lora_updating: bool = Field(False, description="Let `ladder serve models` load adapters named at runtime (vLLM's /v1/load_lora_adapter): off by default, and then only folders inside LADDER_HOME/adapters, safetensors weights only. Registered adapters are served by name either way.")
    inference_timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for the inference endpoint before giving up.")
    base_model: str = Field(
        DEFAULT_BASE,
        description="Default base model for answers, the arena and training: a catalogue name (`ladder models "
        "list`), a local folder, or a Hugging Face id already in the cache.",
    )
    job_backend: Literal["local", "ray"] = Field(
        "local", description="Where training jobs run: `local` (a `ladder worker` process on this machine's GPU) or "
        "`ray` (Ray jobs on a cluster, submitted by `ladder worker`; LADDER_HOME must be shared with the cluster).",
    )
    ray_address: str | None = Field(
        None, description="Ray Job Submission address (the dashboard), e.g. http://ray-head:8265, for LADDER_JOB_BACKEND=ray.",
    )
    ray_gpus_per_job: float = Field(1.0, ge=0, description="GPUs a Ray training job asks for; above 1 it trains on "
                                    "them all with torchrun (data parallel).")
    ray_python: str = Field("python", description="The Python on the Ray cluster's nodes, with Ladder installed.")
    worker_in_chat: bool = Field(
        True, description="When no `ladder worker` is alive, the chat process that queued a job runs it itself. Set "
        "false where workers run elsewhere (compose, Kubernetes, Ray), so a bot never trains on its own machine.",
    )
    gpu_hours_per_user: float | None = Field(
        None, gt=0, description="Training hours each user may launch in 30 days (checked at launch); unset: no quota.",
    )
    max_adapters: int = Field(4, ge=1, le=64, description="Adapters the model server keeps loaded at once (least recently used are unloaded).")
    generation_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="How the model server computes on a CPU: auto runs batches of 8 or more in bf16 autocast "
        "where the CPU has bf16 instructions (AVX512-BF16, AMX; about 1.8x the tokens/s at batch 32) and the rest in "
        "fp32 (faster for one or two rows); fp32 gives answers that never depend on which requests share a batch. A "
        "CUDA GPU with bf16 always uses bf16 weights.")
    max_batch: int = Field(32, ge=1, le=256, description="Requests the model server generates in one batch; more = "
                           "higher throughput for evaluations, more memory (the KV cache grows with it).")
    trainers: list[str] = Field(
        default_factory=list,
        description='Chat users allowed to launch training jobs (JSON list of ids, e.g. ["U123", "alice"]); unset allows only the local terminal.',
    )
    pii_allow: list[str] = Field(
        default_factory=list,
        description='Email addresses or domains the dataset doctor does not count as personal data (JSON list), e.g. '
        '["support@acme.com", "acme.com"] for the company\'s own support address.',
    )
    preference_min_pairs: int = Field(
        100, ge=1,
        description="Fewest preference pairs (blind votes that prefer a side, each prompt once) `train --from-votes` "
        "accepts. DPO needs a few hundred preferences to move a model; fewer than 100 mostly teach it noise.",
    )
    promotion_min_battles: int = Field(
        20, ge=0,
        description="Blind battles a variant needs against the current default before `promote` lets it replace "
        "it (its win-rate interval must also lie above 50%); 0 turns the arena check off, as does a project "
        "with no votes at all. More battles: surer promotions, slower to earn.",
    )
    gpu_prices: dict[str, float] = Field(
        default_factory=dict,
        description='JSON map of GPU name to USD per hour overriding the estimate table, e.g. {"A100-80GB": 1.6}.',
    )
    admins: list[str] = Field(
        default_factory=list,
        description='Chat users who may cancel anyone\'s job (JSON list of ids, e.g. ["U123"]); unset allows only the local terminal.',
    )
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LADDER_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN"),
        description="Slack bot token (xoxb-...); SLACK_BOT_TOKEN works too. Secret: never printed or logged.",
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LADDER_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"),
        description="Slack signing secret used to verify requests; SLACK_SIGNING_SECRET works too. Secret.",
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LADDER_SLACK_APP_TOKEN", "SLACK_APP_TOKEN"),
        description="Slack app-level token (xapp-...) for Socket Mode; SLACK_APP_TOKEN works too. Secret.",
    )
    slack_api_url: str | None = Field(
        None, description="Slack Web API base URL (default Slack's own, https://slack.com/api/); for tests and "
        "Slack-compatible gateways.",
    )
    retention_days: float = Field(90.0, gt=0, description="Days Ladder keeps the conversation log, buttons and "
                                  "message ids before pruning them (hourly, by the running servers); an older "
                                  "button then asks to run its command again. Longer keeps more history; the "
                                  "database grows with it.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest file Ladder downloads from a chat upload, in MB; "
                                 "bigger files are refused by name.")
    discord_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LADDER_DISCORD_TOKEN", "DISCORD_TOKEN"),
        description="Discord bot token; DISCORD_TOKEN works too. Secret: never printed or logged.",
    )
    discord_guild: int | None = Field(
        None, description="Discord server (guild) id that `@Ladder sync` registers the commands in at once, for "
        "development; unset registers them globally.",
    )

    @field_validator("home", "models")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Stored paths (adapters, datasets) derive from it: absolute, so they work from any folder.
        return Path(os.path.abspath(Path(value).expanduser()))

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info) -> int:
        size = info.data.get("chunk_size")
        if size is not None and value >= size:
            raise ValueError(f"overlap {value} must be smaller than LADDER_CHUNK_SIZE ({size})")
        return value

    @field_validator("gpu_prices")
    @classmethod
    def _prices_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        # GPU names are checked against the estimate table where prices are used (estimates.gpu_table).
        for name, price in value.items():
            if price < 0:
                raise ValueError(f"price for {name} must not be negative")
        return value

    @property
    def db_path(self) -> Path:
        """Path of the SQLite store inside `home`."""
        return self.home / "ladder.db"

    @property
    def log_path(self) -> Path:
        """Path of the log file inside `home`."""
        return self.home / "logs" / "ladder.log"

    def secret_values(self) -> list[str]:
        """Return the plain values of every configured secret, for log redaction."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def public_view(self) -> dict[str, object]:
        """Return every setting as plain JSON-able values, with secrets masked."""
        view: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                view[name] = "**********" if value.get_secret_value() else None
            elif isinstance(value, Path):
                view[name] = str(value)
            else:
                view[name] = value
        return view


def default_home() -> Path:
    """Return the user's data folder for Ladder, as CLIs like `llm` and `gh` keep their state:
    $XDG_DATA_HOME/ladder, else ~/.local/share/ladder (%LOCALAPPDATA%\\ladder on Windows)."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "ladder"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ladder"


def load_settings(**overrides: object) -> Settings:
    """Return settings from the environment and `.env`, with `overrides` on top.

    Raises LadderError when a value does not validate, naming the variable and the fix.
    """
    from pydantic import ValidationError

    from bot.core.errors import LadderError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise LadderError(
            f"setting LADDER_{field.upper()} is invalid ({first['msg']}); fix it in the "
            "environment or .env"
        ) from None
    if "models" in settings.model_fields_set:  # from .env too: the trainer and its job processes read the environment
        os.environ["LADDER_MODELS"] = str(settings.models)
    return settings
