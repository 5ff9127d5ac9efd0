"""A loopback stand-in for Slack: its Web API (recording every call and answering like Slack),
file downloads, response URLs and file uploads; plus signed requests for the Bolt app.

Only the platform is faked: the Bolt app, the engine, SQLite and the outbox under test are real.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from slack_bolt.request import BoltRequest

SIGNING_SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
TEAM, BOT = "T1", "UBOT"
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"


class SlackStandIn:
    """Slack's side of the conversation, on 127.0.0.1."""

    def __init__(self):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses: list[dict[str, Any]] = []  # what was sent to response URLs
        self.files: dict[str, bytes] = {}  # downloadable files by name
        self.thread_messages: dict[str, list[dict]] = {}  # thread ts -> user messages (for conversations.replies)
        self.slow: dict[str, float] = {}  # method -> seconds each call takes
        self.failures: dict[str, list[tuple[int, dict, dict]]] = {}  # method -> queued (status, headers, body)
        self.uploads: dict[str, bytes] = {}
        self.deleted: set[str] = set()  # ts of messages deleted in Slack (chat.update answers message_not_found)
        self.messages: dict[str, dict] = {}  # ts -> what a streamed (or updated) message shows now
        self.assistant_threads: dict[tuple[str, str], dict] = {}  # (DM channel, thread ts) -> status, statuses, title
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json", headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                if self.path.startswith("/redirect/"):  # a 302 to wherever the rest of the path says
                    self._send(302, b"", "text/plain", headers={"Location": unquote(self.path[len("/redirect/"):])})
                    return
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/files/") and name in stand_in.files:
                    if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                        self._send(200, stand_in.files[name], "application/octet-stream")
                    else:  # what Slack does without the right token or scope
                        self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
                    return
                self._send(404, b"not found", "text/plain")

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.startswith("/upload/"):
                    stand_in.uploads[self.path.rsplit("/", 1)[-1]] = raw
                    self._send(200, b"OK", "text/plain")
                    return
                if self.path.startswith("/respond/"):
                    stand_in.responses.append(json.loads(raw or b"{}"))
                    self._send(200, b"ok", "text/plain")
                    return
                method = self.path.rsplit("/", 1)[-1]
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or b"{}")
                else:
                    params = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, headers, body = stand_in.answer(method, params, self.headers.get("Authorization"))
                self._send(status, json.dumps(body).encode(), headers=headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = self.base + "/api/"

    def close(self) -> None:
        self.server.shutdown()

    # -- answering ------------------------------------------------------------------------

    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def answer(self, method: str, params: dict[str, Any], auth: str | None) -> tuple[int, dict, dict]:
        time.sleep(self.slow.get(method, 0.0))  # a slow Slack, to widen races in tests
        with self._lock:
            self.calls.append((method, params))
            queued = self.failures.get(method)
            if queued:
                return queued.pop(0)
        if auth != f"Bearer {TOKEN}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return 200, {}, {"ok": True, "user_id": BOT, "bot_id": "B1", "team_id": TEAM, "team": "Test"}
        refused = refusal(method, params)  # Slack's own limits, so compliance is tested, not assumed
        if refused:
            return 200, {}, {"ok": False, "error": refused}
        if method in {"chat.postMessage", "chat.startStream"}:  # a reply in an assistant thread ends its status
            thread = self.assistant_threads.get((params.get("channel"), params.get("thread_ts")))
            if thread is not None:
                thread["status"] = ""
        if method.startswith("assistant.threads."):
            return self.assistant(method, params)
        if method == "chat.postMessage":
            ts = self.next_ts()
            with self._lock:  # kept, as Slack keeps it, for conversations.replies / .history
                where = params.get("thread_ts") or f"channel:{params.get('channel')}"
                self.thread_messages.setdefault(where, []).append(
                    {"ts": ts, "bot_id": "B1", "text": params.get("text"), "metadata": params.get("metadata")})
            return 200, {}, {"ok": True, "channel": params.get("channel"), "ts": ts}
        if method.endswith("Stream"):
            return self.stream(method, params)
        if method == "chat.postEphemeral":  # Slack needs both, and the user must be in the channel
            if not params.get("channel") or not params.get("user"):
                return 200, {}, {"ok": False, "error": "invalid_arguments"}
            return 200, {}, {"ok": True, "message_ts": self.next_ts()}
        if method == "chat.update":
            if params.get("ts") in self.deleted:
                return 200, {}, {"ok": False, "error": "message_not_found"}
            with self._lock:
                shown = self.messages.get(params.get("ts"))
                if shown is not None and shown["streaming"]:  # a stream is ended before its message is edited
                    return 200, {}, {"ok": False, "error": "cant_update_message"}
                if shown is not None:
                    shown.update(text=text_of({"blocks": blocks_of(params)}), blocks=blocks_of(params), updated=True)
            return 200, {}, {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method in {"conversations.replies", "conversations.history"}:
            where = params.get("ts") if method == "conversations.replies" else f"channel:{params.get('channel')}"
            with self._lock:
                messages = [dict(m) for m in self.thread_messages.get(where, [])]
            if str(params.get("include_all_metadata")).lower() not in {"true", "1"}:  # Slack's default: no metadata
                messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
            return 200, {}, {"ok": True, "messages": messages if method == "conversations.replies" else messages[::-1]}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts)}"
            return 200, {}, {"ok": True, "file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            files = json.loads(files) if isinstance(files, str) else files
            return 200, {}, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        return 200, {}, {"ok": True}

    def stream(self, method: str, params: dict[str, Any]) -> tuple[int, dict, dict]:
        """chat.startStream / appendStream / stopStream, with Slack's rules: a stream in a
        channel names the user and team it streams to; Markdown of at most 12,000 characters a
        call; an append needs text; only a message still streaming takes an append or a stop."""
        def refuse(error: str) -> tuple[int, dict, dict]:
            return 200, {}, {"ok": False, "error": error}

        text = params.get("markdown_text")
        if text is not None and len(text) > MAX_STREAM_TEXT:
            return refuse("msg_too_long")
        if not params.get("channel"):
            return refuse("invalid_arguments")
        if method == "chat.startStream":
            if params["channel"][0] in "CG" and not (params.get("recipient_user_id") and params.get("recipient_team_id")):
                return refuse("invalid_arguments")
            ts = self.next_ts()
            with self._lock:
                self.messages[ts] = {"text": text or "", "streaming": True, "blocks": [], "thread_ts": params.get("thread_ts"),
                                     "to": params.get("recipient_user_id")}
                where = params.get("thread_ts") or f"channel:{params['channel']}"
                self.thread_messages.setdefault(where, []).append({"ts": ts, "bot_id": "B1", "text": text})
            return 200, {}, {"ok": True, "channel": params["channel"], "ts": ts}
        with self._lock:
            shown = self.messages.get(params.get("ts"))
            if shown is None:
                return refuse("message_not_found")
            if not shown["streaming"]:
                return refuse(NOT_STREAMING)
            if method == "chat.appendStream":
                if not text:
                    return refuse("invalid_arguments")
                shown["text"] += text
            elif method == "chat.stopStream":
                blocks = blocks_of(params)
                if refusal("chat.postMessage", {"blocks": blocks}):
                    return refuse("invalid_blocks")
                shown.update(text=shown["text"] + (text or ""), streaming=False, blocks=blocks)
                for message in self.thread_messages.get(shown["thread_ts"] or f"channel:{params['channel']}", []):
                    if message["ts"] == params["ts"]:
                        message["metadata"] = params.get("metadata")
            else:
                return refuse("unknown_method")
        return 200, {}, {"ok": True, "channel": params["channel"], "ts": params["ts"]}

    def open_assistant_thread(self, user: str = "U1", viewing: str | None = None) -> tuple[str, str, BoltRequest]:
        """A user opens Ladder's assistant thread (while viewing channel `viewing`): return its DM
        channel, its thread ts and the `assistant_thread_started` event Slack sends."""
        channel, ts = f"D{user}", self.next_ts()
        self.assistant_threads[(channel, ts)] = {"status": "", "statuses": [], "title": None, "prompts": None}
        context = {"channel_id": viewing, "team_id": TEAM, "enterprise_id": None} if viewing else {}
        started = event("assistant_thread_started", f"Ev{time.perf_counter_ns()}",
                        assistant_thread={"user_id": user, "channel_id": channel, "thread_ts": ts, "context": context},
                        event_ts=ts)
        return channel, ts, started

    def assistant(self, method: str, params: dict[str, Any]) -> tuple[int, dict, dict]:
        """assistant.threads.setStatus / setTitle / setSuggestedPrompts, with Slack's rules: the
        channel and thread of an assistant thread; a status (empty clears it) with at most 10
        loading messages; a title that is not empty; one to four prompts, each a title and a message."""
        def refuse(error: str) -> tuple[int, dict, dict]:
            return 200, {}, {"ok": False, "error": error}

        if not params.get("channel_id"):
            return refuse("invalid_arguments")
        thread = self.assistant_threads.get((params["channel_id"], params.get("thread_ts")))
        if thread is None:
            known = any(channel == params["channel_id"] for channel, _ in self.assistant_threads)
            return refuse("invalid_thread_ts" if known else "channel_not_found")
        if method == "assistant.threads.setStatus":
            loading = params.get("loading_messages") or []
            if "status" not in params or len(loading) > 10:
                return refuse("invalid_arguments")
            thread["status"] = params["status"]
            thread["statuses"].append(params["status"])
        elif method == "assistant.threads.setTitle":
            if not params.get("title"):
                return refuse("invalid_arguments")
            thread["title"] = params["title"]
        elif method == "assistant.threads.setSuggestedPrompts":
            prompts = params.get("prompts") or []
            prompts = json.loads(prompts) if isinstance(prompts, str) else prompts
            if not 1 <= len(prompts) <= 4 or not all(p.get("title") and p.get("message") for p in prompts):
                return refuse("invalid_arguments")
            thread["prompts"] = prompts
        else:
            return refuse("unknown_method")
        return 200, {}, {"ok": True}

    def shown(self, ts: str) -> str:
        """All the text message `ts` shows now (a streamed message's text and its blocks)."""
        message = self.messages[ts]
        return message["text"] if message.get("updated") else "\n".join(
            [message["text"], text_of({"blocks": message["blocks"]})])

    def fail_next(self, method: str, error: str | None = None, status: int = 200, headers: dict | None = None) -> None:
        """Make the next call of `method` fail (a Slack error, or a status like 429)."""
        body = {"ok": False, "error": error or "ratelimited"}
        self.failures.setdefault(method, []).append((status, headers or {}, body))

    # -- reading what happened ----------------------------------------------------------------

    def of(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in list(self.calls) if name == method]

    def shared_file(self, name: str, content: bytes) -> dict[str, Any]:
        """Return a Slack file object for `content`, downloadable from this stand-in."""
        self.files[name] = content
        return {"id": f"F{name.replace('.', '')}", "name": name, "size": len(content), "mimetype": "text/plain",
                "url_private_download": f"{self.base}/files/{name}"}


MAX_BLOCKS, MAX_SECTION, MAX_TEXT, MAX_LABEL, MAX_STREAM_TEXT = 50, 3000, 40000, 75, 12000
NOT_STREAMING = "message_not_in_streaming_state"


def refusal(method: str, params: dict[str, Any]) -> str | None:
    """The error Slack answers a message that breaks its limits with, or None: more than 50
    blocks, a section over 3,000 characters, a button label over 75, a repeated action_id
    (`invalid_blocks`), text over 40,000 characters (`msg_too_long`)."""
    if method not in {"chat.postMessage", "chat.update", "chat.postEphemeral"}:
        return None
    if len(params.get("text") or "") > MAX_TEXT:
        return "msg_too_long"
    blocks = blocks_of(params)
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    action_ids: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and len(text.get("text") or "") > MAX_SECTION:
            return "invalid_blocks"
        if block.get("type") == "context_actions":  # only feedback or icon buttons, each side with a label and a value
            for element in block.get("elements", []):
                if element.get("type") not in {"feedback_buttons", "icon_button"}:
                    return "invalid_blocks"
                sides = [element.get(side) or {} for side in ("positive_button", "negative_button")]
                if element["type"] == "feedback_buttons" and not all(
                        b.get("value") and 0 < len((b.get("text") or {}).get("text") or "") <= MAX_LABEL for b in sides):
                    return "invalid_blocks"
                action_ids.append(element.get("action_id"))
            continue
        for element in block.get("elements", []):
            if element.get("type") == "button":
                if len(element["text"]["text"]) > MAX_LABEL:
                    return "invalid_blocks"
                action_ids.append(element.get("action_id"))
    return "invalid_blocks" if len(action_ids) != len(set(action_ids)) else None


def blocks_of(params: dict[str, Any]) -> list[dict]:
    blocks = params.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def text_of(params: dict[str, Any]) -> str:
    """All the text a posted or updated message shows."""
    parts = [params.get("text") or params.get("markdown_text") or ""]
    for block in blocks_of(params):
        if block.get("text"):
            parts.append(block["text"]["text"] if isinstance(block["text"], dict) else block["text"])
        for element in block.get("elements", []):
            if element.get("type") == "button":
                parts.append(element["text"]["text"])
            elif element.get("type") == "feedback_buttons":
                parts += [element[side]["text"]["text"] for side in ("positive_button", "negative_button")]
            elif element.get("text"):
                parts.append(element["text"])
    return "\n".join(parts)


def buttons_of(params: dict[str, Any]) -> dict[str, str]:
    """Button label -> value in a posted message."""
    found = {}
    for block in blocks_of(params):
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["text"]["text"]] = element["value"]
            elif element.get("type") == "feedback_buttons":
                for side in ("positive_button", "negative_button"):
                    found[element[side]["text"]["text"]] = element[side]["value"]
    return found


# -- signed requests --------------------------------------------------------------------------


def signed(body: str, content_type: str, secret: str = SIGNING_SECRET, age_s: float = 0.0,
           retry: int | None = None) -> BoltRequest:
    """Return a Bolt request signed as Slack signs it (`age_s` seconds old)."""
    timestamp = str(int(time.time() - age_s))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"content-type": [content_type], "x-slack-signature": [signature],
               "x-slack-request-timestamp": [timestamp]}
    if retry is not None:
        headers["x-slack-retry-num"] = [str(retry)]
        headers["x-slack-retry-reason"] = ["http_timeout"]
    return BoltRequest(body=body, headers=headers)


def slash(stand_in: SlackStandIn, text: str, user: str = "U1", channel: str = "C1", **kw) -> BoltRequest:
    trigger = f"trig-{time.perf_counter_ns()}"
    body = urlencode({"command": "/ladder", "text": text, "user_id": user, "channel_id": channel, "team_id": TEAM,
                      "trigger_id": trigger, "response_url": f"{stand_in.base}/respond/{trigger}"})
    return signed(body, "application/x-www-form-urlencoded", **kw)


def click(stand_in: SlackStandIn, value: str, user: str = "U1", channel: str = "C1", thread_ts: str | None = None,
          message_ts: str = "1700000000.999999", action_id: str = "ladder-0", kind: str = "button") -> BoltRequest:
    """A button pressed (`kind` "feedback_buttons": one side of an answer's feedback buttons)."""
    trigger = f"trig-{time.perf_counter_ns()}"
    payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": TEAM}, "channel": {"id": channel},
               "trigger_id": trigger, "response_url": f"{stand_in.base}/respond/{trigger}",
               "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "thread_ts": thread_ts},
               "message": {"ts": message_ts, "thread_ts": thread_ts},
               "actions": [{"action_id": action_id, "value": value, "type": kind, "block_id": "b1"}]}
    return signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def event(kind: str, event_id: str, retry: int | None = None, **fields) -> BoltRequest:
    body = json.dumps({"type": "event_callback", "team_id": TEAM, "api_app_id": "A1", "event_id": event_id,
                       "event_time": int(time.time()), "event": {"type": kind, **fields},
                       "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}]})  # as Slack sends
    return signed(body, "application/json", retry=retry)


def submit(view: dict[str, Any], values: dict[str, str], user: str = "U1") -> BoltRequest:
    """Submit the modal `view` (as views.open received it) with `values` by field name."""
    state = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        name = block["block_id"]
        value = values.get(name, element.get("initial_value") or (element.get("initial_option") or {}).get("value", ""))
        if element["type"] == "static_select":
            state[name] = {name: {"type": "static_select", "selected_option": {"value": value} if value else None}}
        else:
            state[name] = {name: {"type": element["type"], "value": value}}
    payload = {"type": "view_submission", "user": {"id": user}, "team": {"id": TEAM},
               "view": {"id": "V1", "type": "modal", "callback_id": view["callback_id"],
                        "private_metadata": view["private_metadata"],
                        "state": {"values": state}}}
    return signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
