"""The one client for inference: OpenAI-compatible chat completions over HTTP.

Pointing LADDER_INFERENCE_URL at `ladder serve models`, vLLM (`--enable-lora`) or LoRAX is
configuration, not code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing as closing_iterator
from dataclasses import dataclass

import httpx

from bot.core.config import Settings
from bot.core.errors import LadderError

RUNTIME_LORA_OFF = "runtime_lora_off"  # `ladder serve models`' error code while its runtime LoRA routes are off

logger = logging.getLogger("ladder.inference")


_pool: httpx.Client | None = None
_pool_lock = threading.Lock()


def _http() -> httpx.Client:
    """Return the process's one HTTP connection pool: connections are kept alive and reused, and
    a burst of concurrent requests (an evaluation's wave) costs no client set-up each (a new
    httpx client builds an SSL context: milliseconds of CPU that 32 threads queue behind)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = httpx.Client(limits=httpx.Limits(max_connections=512, max_keepalive_connections=64))
        return _pool


class Stopped(Exception):
    """The user stopped a streamed answer part-way; `text` is what was written until then."""

    def __init__(self, text: str):
        super().__init__("stopped")
        self.text = text


def _pieces(event: dict) -> Iterator[str]:
    """The text in one chunk of a chat completion stream."""
    for choice in event.get("choices") or []:
        piece = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
        if piece:
            yield piece


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

    def register_adapter(self, name: str, path: str) -> None:
        """Ask the server to serve the adapter in folder `path` as `name` (vLLM's runtime
        `/v1/load_lora_adapter`, which `ladder serve models` implements too). A name the server
        already has is unloaded and loaded again, so a re-trained adapter never serves old
        weights. Raises LadderError when the server refuses."""
        response = self._lora("load_lora_adapter", {"lora_name": name, "lora_path": path})
        if response.status_code == 404 and RUNTIME_LORA_OFF in response.text:
            return  # `ladder serve models` with runtime loading off serves registered adapters by name
        if response.status_code != 200 and "already" in response.text:
            self._lora("unload_lora_adapter", {"lora_name": name})
            response = self._lora("load_lora_adapter", {"lora_name": name, "lora_path": path})
        if response.status_code != 200:
            raise LadderError(f"the inference server at {self.base_url} would not load adapter {name} (HTTP "
                              f"{response.status_code}); for vLLM, start it with --enable-lora and "
                              "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True")

    def unregister_adapter(self, name: str) -> bool:
        """Ask the server to stop serving `name` (`/v1/unload_lora_adapter`); return whether it did
        (False when it never had it)."""
        return self._lora("unload_lora_adapter", {"lora_name": name}).status_code == 200

    def _lora(self, action: str, body: dict[str, str]) -> httpx.Response:
        try:
            return _http().post(f"{self.base_url}/{action}", json=body, headers=self._headers(), timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise LadderError(f"could not reach the inference server at {self.base_url} to change adapter "
                              f"{body['lora_name']} ({type(exc).__name__})") from None

    def chat(self, messages: list[dict[str, str]], model: str | None = None, **params) -> str:
        """Return the assistant's reply text. Raises LadderError when the server fails."""
        return self.complete(messages, model, **params).text

    def complete(self, messages: list[dict[str, str]], model: str | None = None, **params) -> "Completion":
        """Return the reply with its latency and token counts. Raises LadderError when the server fails
        (an unknown model is named in the message)."""
        started = time.perf_counter()
        body = {"model": model or self.model, "messages": messages, **params}
        try:
            response = _http().post(f"{self.base_url}/chat/completions", json=body, headers=self._headers(),
                                    timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            raise self._refusal(response, body["model"])
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LadderError(
                f"the inference server at {self.base_url} sent a reply that is not an OpenAI chat completion"
            ) from None
        usage = data.get("usage") or {}
        return Completion(text, body["model"], round((time.perf_counter() - started) * 1000, 1),
                          int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def stream(self, messages: list[dict[str, str]], model: str | None = None, usage: dict[str, int] | None = None,
               **params) -> Iterator[str]:
        """Yield the reply's text as the server writes it (`stream: true`, server-sent events).

        With `usage` (a dict), the server is asked for the token counts (`stream_options`) and
        they are put in it when the stream ends. Closing the iterator early closes the connection,
        which stops the generation on servers that notice (`ladder serve models` does, at the next
        token). Raises LadderError when the server fails, before the stream or part-way through it.
        """
        body = {"model": model or self.model, "messages": messages, **params, "stream": True}
        if usage is not None:
            body["stream_options"] = {"include_usage": True}
        try:
            with _http().stream("POST", f"{self.base_url}/chat/completions", json=body, headers=self._headers(),
                                timeout=self.timeout_s) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._refusal(response, body["model"])
                for line in response.iter_lines():
                    data = line[5:].strip() if line.startswith("data:") else None
                    if data == "[DONE]":
                        return
                    if data:
                        event = self._event(data)
                        if usage is not None and isinstance(event.get("usage"), dict):
                            usage.update({k: int(event["usage"].get(k) or 0)
                                          for k in ("prompt_tokens", "completion_tokens")})
                        yield from _pieces(event)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def complete_streamed(self, messages: list[dict[str, str]], model: str | None = None,
                          on_text: Callable[[str], None] | None = None, stop: threading.Event | None = None,
                          **params) -> "Completion":
        """Return the reply as `complete` does (latency, token counts), streaming it meanwhile:
        `on_text` gets the text so far after each piece. Once `stop` is set, the stream closes
        (the server stops generating) and Stopped is raised with the text written until then."""
        started = time.perf_counter()
        usage: dict[str, int] = {}
        pieces = self.stream(messages, model, usage=usage, **params)
        text = ""
        with closing_iterator(pieces):
            for piece in pieces:
                text += piece
                if stop is not None and stop.is_set():
                    raise Stopped(text)
                if on_text is not None:
                    on_text(text)
        return Completion(text, model or self.model, round((time.perf_counter() - started) * 1000, 1),
                          usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def _event(self, data: str) -> dict:
        """One server-sent event of a chat completion stream, parsed; raises LadderError for an
        error event or one that is not a chat completion chunk."""
        try:
            event = json.loads(data)
            if not isinstance(event, dict) or not isinstance(event.get("choices") or [], list):
                raise ValueError
        except ValueError:
            raise LadderError(f"the inference server at {self.base_url} sent a stream that is not an OpenAI "
                              "chat completion stream") from None
        if event.get("error"):
            message = (event["error"] or {}).get("message") if isinstance(event["error"], dict) else event["error"]
            raise LadderError(f"the inference server at {self.base_url} failed part-way through the answer "
                              f"({message}); try again, and see the server log if it keeps failing")
        return event

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _unreachable(self, exc: httpx.HTTPError) -> LadderError:
        """The error for a server that did not answer (in time)."""
        if isinstance(exc, httpx.TimeoutException):
            return LadderError(f"the inference server at {self.base_url} did not answer within {self.timeout_s:g} s; "
                               "check it is running or raise LADDER_INFERENCE_TIMEOUT_S")
        return LadderError(f"could not reach the inference server at {self.base_url} ({type(exc).__name__}); "
                           "check LADDER_INFERENCE_URL or start `ladder serve models`")

    def _refusal(self, response: httpx.Response, model: str) -> LadderError:
        """The error for a completion the server refused (an unknown model: ModelNotServed)."""
        if response.status_code == 404:
            return ModelNotServed(f"the inference server does not serve model {model!r}; "
                                  "`ladder adapters list --project P` shows the adapters")
        logger.warning("inference error %s: %s", response.status_code, response.text[:500])
        return LadderError(f"the inference server at {self.base_url} answered HTTP {response.status_code} for model "
                           f"{model!r}; check the model name (LADDER_INFERENCE_MODEL) and the server log")


class ModelNotServed(LadderError):
    """The inference server does not know the model (an adapter it has not loaded)."""


@dataclass(frozen=True)
class Completion:
    """One answer with what it cost."""

    text: str
    model: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int


_embedded: dict[str, str] = {}
_embedded_lock = threading.Lock()


def embedded_client(settings: Settings, store, base_model: str | None = None) -> InferenceClient:
    """Return a client for the in-process model server of `base_model` (default
    LADDER_BASE_MODEL), starting it on first use.

    `ladder chat` uses it when LADDER_INFERENCE_URL is unset. Raises LadderError when the base
    model is not on disk.
    """
    from bot.serving.http import model_server

    base_model = base_model or settings.base_model
    with _embedded_lock:
        key = f"{base_model}@{settings.home}"
        if key not in _embedded:
            server = model_server(store, base_model, settings.max_adapters, precision=settings.generation_precision,
                                  max_batch=settings.max_batch)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            _embedded[key] = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return InferenceClient(_embedded[key], "base", None, settings.inference_timeout_s)


def embedded_running(settings: Settings, base_model: str | None = None) -> bool:
    """Return True when the in-process server for `base_model` is already up (no load to wait for)."""
    return f"{base_model or settings.base_model}@{settings.home}" in _embedded


def client_for(settings: Settings, store, base_model: str | None = None) -> InferenceClient:
    """Return the client for generation: LADDER_INFERENCE_URL when set, else the embedded server
    of `base_model` (default LADDER_BASE_MODEL).

    Raises LadderError when neither is available (no URL and the base model is not on disk).
    """
    client = InferenceClient.from_settings(settings)
    if client is not None:
        return client
    try:
        return embedded_client(settings, store, base_model)
    except LadderError as exc:
        raise LadderError(
            f"no model can answer: {exc.message} (or set LADDER_INFERENCE_URL to an OpenAI-compatible endpoint)"
        ) from None
