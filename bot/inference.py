"""The one client for inference: OpenAI-compatible chat completions over HTTP.

Pointing LADDER_INFERENCE_URL at `ladder serve models`, vLLM (`--enable-lora`) or LoRAX is
configuration, not code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from bot.config import Settings
from bot.errors import LadderError

logger = logging.getLogger("ladder.inference")


@dataclass
class InferenceClient:
    """Chat completions against `base_url` (which ends in /v1)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "InferenceClient | None":
        """Return a client for LADDER_INFERENCE_URL, or None when it is not set."""
        if not settings.inference_url:
            return None
        key = settings.inference_api_key.get_secret_value() if settings.inference_api_key else None
        return cls(settings.inference_url.rstrip("/"), settings.inference_model, key, settings.inference_timeout_s)

    def chat(self, messages: list[dict[str, str]], model: str | None = None, **params) -> str:
        """Return the assistant's reply text. Raises LadderError when the server fails."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": model or self.model, "messages": messages, **params}
        try:
            response = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise LadderError(
                f"the inference server at {self.base_url} did not answer within {self.timeout_s:g} s; "
                "check it is running or raise LADDER_INFERENCE_TIMEOUT_S"
            ) from None
        except httpx.HTTPError as exc:
            raise LadderError(
                f"could not reach the inference server at {self.base_url} ({type(exc).__name__}); "
                "check LADDER_INFERENCE_URL or start `ladder serve models`"
            ) from None
        if response.status_code != 200:
            logger.warning("inference error %s: %s", response.status_code, response.text[:500])
            raise LadderError(
                f"the inference server at {self.base_url} answered HTTP {response.status_code} for model "
                f"{body['model']!r}; check the model name (LADDER_INFERENCE_MODEL) and the server log"
            )
        try:
            return response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LadderError(
                f"the inference server at {self.base_url} sent a reply that is not an OpenAI chat completion"
            ) from None
