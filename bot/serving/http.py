"""`ladder serve models`: the OpenAI-compatible HTTP API over a model host.

`/v1/chat/completions` (with streaming) and `/v1/models`. Once a stream has started, a failure
is an error event, never a JSON 500, and a client that hangs up stops the generation.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bot.core.errors import LadderError
from bot.serving.batcher import Batcher
from bot.serving.client import RUNTIME_LORA_OFF
from bot.serving.host import BASE, GenRequest, ModelHost, UnknownModel

logger = logging.getLogger("ladder.serving")


def parse_request(body: dict[str, Any]) -> tuple[GenRequest, bool]:
    """Return (request, stream) from an OpenAI chat completion body; raise LadderError if invalid."""
    if not isinstance(body, dict):
        raise LadderError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        raise LadderError("`messages` must be a non-empty list of {role, content} objects with string content")
    model = body.get("model") or BASE
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 256))
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    try:
        request = GenRequest(
            model=str(model), messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            max_tokens=int(max_tokens), temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)), stop=[str(s) for s in stop],
            seed=int(body["seed"]) if body.get("seed") is not None else None,
            min_tokens=int(body.get("min_tokens") or 0),
            repetition_penalty=float(body.get("repetition_penalty") or 1.0),
            frequency_penalty=float(body.get("frequency_penalty") or 0.0),
            presence_penalty=float(body.get("presence_penalty") or 0.0),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        )
    except (TypeError, ValueError, AttributeError):
        raise LadderError("max_tokens, min_tokens, temperature, top_p, the penalties and seed must be numbers, "
                          "and stream_options an object") from None
    if not 1 <= request.max_tokens <= 8192:
        raise LadderError("max_tokens must be between 1 and 8192")
    if not 0 <= request.min_tokens <= request.max_tokens:
        raise LadderError("min_tokens must be between 0 and max_tokens")
    if not 0 <= request.temperature <= 2 or not 0 < request.top_p <= 1:
        raise LadderError("temperature must be in [0, 2] and top_p in (0, 1]")
    if not 0 < request.repetition_penalty <= 2:
        raise LadderError("repetition_penalty must be in (0, 2]; 1 leaves the model as it is")
    if not (-2 <= request.frequency_penalty <= 2 and -2 <= request.presence_penalty <= 2):
        raise LadderError("frequency_penalty and presence_penalty must be in [-2, 2]")
    return request, bool(body.get("stream"))


def runtime_adapter_folder(raw: str, root: Path) -> Path:
    """Return the adapter folder `raw` names for runtime loading, when it is one Ladder may load:
    inside `root` (Ladder's adapters folder), with no `..` and no symlink on the way or among its
    files, holding adapter_config.json and safetensors weights. Raises LadderError otherwise."""
    path = Path(raw)
    if ".." in path.parts:
        raise LadderError("lora_path may not contain '..'; give the adapter's folder under Ladder's adapters folder")
    folder = Path(os.path.abspath(root / path))
    top = Path(os.path.abspath(root))
    if folder != top and top not in folder.parents:
        raise LadderError(f"lora_path {raw} is outside Ladder's adapters folder ({top}); only adapters Ladder "
                          "trained or registered there are loaded")
    steps = [folder, *[p for p in folder.parents if top in p.parents]]  # below the adapters folder
    files = [folder / "adapter_config.json", folder / "adapter_model.safetensors"]
    if any(p.is_symlink() for p in steps + files):
        raise LadderError(f"lora_path {raw} goes through a symbolic link; give the adapter's real folder")
    if not files[0].exists():
        raise LadderError(f"{raw} holds no LoRA adapter (no adapter_config.json); give the adapter's folder")
    if not files[1].exists():
        raise LadderError(f"{raw} has no adapter_model.safetensors; only safetensors weights are loaded (pickled "
                          ".bin weights can run code); save the adapter with safetensors")
    return folder


def make_server(host: ModelHost, address: str = "127.0.0.1", port: int = 8000, batch_window_ms: float = 60.0,
                max_batch: int = 32, api_key: str | None = None, lora_root: Path | None = None):
    """Return a ThreadingHTTPServer serving the OpenAI-compatible API for `host`.

    With `api_key`, every route but the health check needs `Authorization: Bearer KEY`. The
    runtime LoRA routes (vLLM's load/unload_lora_adapter) are off unless `lora_root` is set (the
    server's `lora_root` attribute, read per request), and then load only from inside it.
    """
    batcher = Batcher(host, window_ms=batch_window_ms, max_batch=max_batch)
    expected = f"Bearer {api_key}".encode() if api_key else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # keep request logs in our log, not on stderr
            logger.info("%s " + fmt, self.address_string(), *args)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str) -> None:
            self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

        def _with_body(self, handle):
            """Return `handle(the JSON body)`, or answer the error (400, or 404 for an unknown
            model) and return None."""
            try:
                return handle(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"))
            except json.JSONDecodeError:
                self._error(400, "the request body is not valid JSON", "invalid_json")
            except UnknownModel as exc:
                self._error(404, exc.message, "model_not_found")
            except LadderError as exc:
                self._error(400, exc.message, "invalid_request")
            return None

        def _allowed(self) -> bool:
            """True when no key is set or the request carries it; else answer 401."""
            if expected is None or hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                return True
            self._json(401, {"error": {"message": "missing or wrong API key; send Authorization: Bearer "
                                                  "<LADDER_INFERENCE_API_KEY>", "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})
            return False

        def do_GET(self):  # noqa: N802 - http.server API
            if self.path.rstrip("/") in {"/health", "/healthz"}:
                self._json(200, {"status": "ok", "base_model": host.base_id, "precision": host.precision,
                                 "resident": [ref.name for ref in host.resident.values()]})
                return
            if not self._allowed():
                return
            if self.path.rstrip("/") in {"/v1/models", "/models"}:
                created = int(time.time())
                self._json(200, {"object": "list", "data": [
                    {"id": name, "object": "model", "created": created, "owned_by": "ladder"} for name in host.models()
                ]})
            else:
                self._error(404, f"no route {self.path}; use /v1/chat/completions or /v1/models", "not_found")

        def do_POST(self):  # noqa: N802 - http.server API
            if not self._allowed():
                return
            if self.path.rstrip("/") in {"/v1/load_lora_adapter", "/v1/unload_lora_adapter"}:
                if self.server.lora_root is None:
                    self._error(404, "runtime LoRA loading is off: this server serves the adapters Ladder registered "
                                "by name; set LADDER_ALLOW_RUNTIME_LORA_UPDATING=true to load others at runtime",
                                RUNTIME_LORA_OFF)
                    return
                self._adapters(self.path.rstrip("/").rsplit("/", 1)[-1])
                return
            if self.path.rstrip("/") not in {"/v1/chat/completions", "/chat/completions"}:
                self._error(404, f"no route {self.path}; use /v1/chat/completions", "not_found")
                return
            def accept(body):
                request, stream = parse_request(body)
                host.ensure(request.model)  # 404 before any streaming starts
                return request, stream

            accepted = self._with_body(accept)
            if accepted is None:
                return
            request, stream = accepted
            completion_id = "chatcmpl-" + secrets.token_hex(12)
            created = int(time.time())
            if stream:
                self._stream(request, completion_id, created)
                return
            try:
                result = batcher.submit(request)
            except Exception:
                incident = secrets.token_hex(4)
                logger.exception("incident %s generating for %s", incident, request.model)
                self._error(500, f"generation failed (incident {incident}); see the server log", "server_error")
                return
            self._json(200, {
                "id": completion_id, "object": "chat.completion", "created": created, "model": request.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": result.finish_reason}],
                "usage": _usage({"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}),
            })

        def _adapters(self, action: str) -> None:
            """vLLM's runtime LoRA endpoints: {"lora_name", "lora_path"} to load, {"lora_name"} to unload."""

            def change(body):
                name = body.get("lora_name") if isinstance(body, dict) else None
                if not isinstance(name, str) or not name:
                    raise LadderError("give lora_name (and lora_path to load)")
                if action == "unload_lora_adapter":
                    host.unload_adapter(name)
                    return f"Success: LoRA adapter '{name}' removed successfully."
                if not isinstance(body.get("lora_path"), str):
                    raise LadderError("give lora_path: the adapter's folder")
                host.load_adapter(name, str(runtime_adapter_folder(body["lora_path"], self.server.lora_root)))
                return f"Success: LoRA adapter '{name}' added successfully."

            text = self._with_body(change)
            if text is None:
                return
            data = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, request: GenRequest, completion_id: str, created: int) -> None:
            """Stream server-sent events. Once the 200 is out, a failure is an error event (never a
            JSON 500 inside the stream) and a client that leaves stops the generation."""
            outcome: dict[str, Any] = {}
            pieces = host.stream(request, outcome)

            def send(payload: dict | str) -> None:
                data = ("data: " + (payload if isinstance(payload, str) else json.dumps(payload)) + "\n\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def chunk(delta: dict, finish: str | None = None) -> dict:
                return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                        "model": request.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                send(chunk({"role": "assistant", "content": ""}))
                for piece in pieces:
                    send(chunk({"content": piece}))
                send(chunk({}, outcome["finish_reason"]))
                if request.include_usage:
                    send({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                          "model": request.model, "choices": [], "usage": _usage(outcome)})
                send("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError as exc:  # the client went away: say so in one line, stop generating
                logger.info("client %s left a stream of %s (%s); generation stopped", self.address_string(),
                            request.model, type(exc).__name__)
                self.close_connection = True
            except Exception as exc:
                incident = secrets.token_hex(4)
                logger.error("incident %s: streaming %s failed: %s", incident, request.model, exc,
                             exc_info=exc.__cause__ or exc)
                try:
                    send({"error": {"message": f"generation failed (incident {incident}); see the server log",
                                    "type": "server_error", "code": "generation_failed"}})
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True
            finally:
                pieces.close()  # joins the generation thread before the model lock is released

    server = QuietServer((address, port), Handler)
    server.daemon_threads = True
    server.lora_root = Path(lora_root) if lora_root is not None else None
    return server


def model_server(store, base_model: str, max_adapters: int, address: str = "127.0.0.1", port: int = 0,
                 precision: str = "auto", max_batch: int = 32, api_key: str | None = None,
                 lora_root: Path | None = None):
    """Return the OpenAI-compatible server for `base_model` and the registry's adapters, not yet
    serving (call `serve_forever`): `ladder serve models` and the in-process server of
    `ladder chat` are the same server. Raises LadderError when the base model is not on disk."""
    from bot.serving.registry import registry_from_store

    lookup, names = registry_from_store(store)  # reads the store from whichever thread serves
    return make_server(ModelHost(base_model, lookup, max_adapters, names, precision), address, port,
                       max_batch=max_batch, api_key=api_key, lora_root=lora_root)


def is_loopback(address: str) -> bool:
    """True when `address` only accepts connections from this machine."""
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that logs a client hanging up in one line, not a traceback.

    Its listen backlog holds a whole batch of connections arriving at once (an evaluation opens
    `max_batch` of them); the default of 5 resets the rest."""

    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            logger.info("client %s disconnected (%s)", client_address[0], type(exc).__name__)
        else:
            logger.exception("error serving %s", client_address[0])


def _usage(outcome: dict[str, Any]) -> dict[str, int]:
    return {"prompt_tokens": outcome["prompt_tokens"], "completion_tokens": outcome["completion_tokens"],
            "total_tokens": outcome["prompt_tokens"] + outcome["completion_tokens"]}


