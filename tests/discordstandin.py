"""A stand-in for Discord, in process: gateway-shaped payloads go into discord.py's own
connection state (`parse_guild_create`, `parse_interaction_create`, `parse_message_create`), and
the REST and webhook layers under the real bot are replaced by recorders that answer like
Discord. Only the platform is faked: discord.py's command tree, views and modals, the engine,
SQLite and the outbox under test are real.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from discord.webhook.async_ import AsyncWebhookAdapter, async_context

APP_ID, GUILD, CHANNEL, OWNER = 900, 100, 200, 10
BOT_USER = {"id": "901", "username": "Ladder", "discriminator": "0", "avatar": None, "bot": True}


def user(user_id: int, name: str | None = None) -> dict[str, Any]:
    return {"id": str(user_id), "username": name or f"user{user_id}", "discriminator": "0", "avatar": None,
            "global_name": None}


def member(user_id: int) -> dict[str, Any]:
    return {"user": user(user_id), "roles": [], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": False, "mute": False,
            "flags": 0, "permissions": "2199023255551"}


def text_channel(channel_id: int = CHANNEL, name: str = "general") -> dict[str, Any]:
    return {"id": str(channel_id), "type": 0, "guild_id": str(GUILD), "name": name, "position": 0,
            "permission_overwrites": [], "nsfw": False, "parent_id": None}


def thread_channel(thread_id: int, parent: int = CHANNEL, name: str = "thread") -> dict[str, Any]:
    return {"id": str(thread_id), "type": 11, "guild_id": str(GUILD), "parent_id": str(parent), "name": name,
            "owner_id": BOT_USER["id"], "message_count": 0, "member_count": 1, "rate_limit_per_user": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                "archive_timestamp": "2026-01-01T00:00:00+00:00", "locked": False}}


class DiscordStandIn:
    """Records every REST and webhook call the bot makes; answers like Discord."""

    def __init__(self):
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, payload)
        self.cdn: dict[str, bytes] = {}
        self.refuse: dict[str, int] = {}  # [method and] path prefix -> HTTP status to answer with once
        self._ids = itertools.count(5000)
        self.threads: list[int] = []
        self.deleted: set[int] = set()  # channels and threads deleted in Discord: calls on them answer 404
        self.nonces: dict[str, dict] = {}  # enforced nonce -> the message it created
        self.created = 0  # messages Discord created (a repeated enforced nonce creates none)
        self.slow: dict[str, float] = {}  # path prefix -> seconds Discord takes to answer it
        self.abandoned: list[str] = []  # paths of calls the bot cancelled while Discord was slow
        self.history: dict[int, list[tuple[float, dict]]] = {}  # channel -> (created at, message), oldest first
        self.messages: dict[int, dict[str, dict]] = {}  # channel -> message id -> what it shows now (deletes drop it)

    def next_id(self) -> int:
        return next(self._ids)

    def messages_after(self, channel_id: int, params: dict) -> list[dict]:
        """GET /channels/{id}/messages with `after` (a snowflake: a moment) and `limit`: the
        messages created since, newest first, as Discord answers."""
        from discord.utils import snowflake_time

        since = snowflake_time(int(params["after"])).timestamp() if params.get("after") else 0.0
        found = [m for created, m in self.history.get(channel_id, []) if created > since]
        return found[::-1][: int(params.get("limit", 50))]

    # -- the REST layer (bot.http.request) ---------------------------------------------------

    async def request(self, route, *, files=None, form=None, **kwargs) -> Any:
        payload = kwargs.get("json")
        if form:
            payload = next((json.loads(f["value"]) for f in form if f.get("name") == "payload_json"), payload)
            payload = {**(payload or {}), "files": [f.filename for f in files or []]}
        self.calls.append((route.method, _path(route), payload))
        for prefix, seconds in self.slow.items():
            if _path(route).startswith(prefix):
                try:
                    await asyncio.sleep(seconds)
                except asyncio.CancelledError:
                    self.abandoned.append(_path(route))
                    raise
        for prefix, status in list(self.refuse.items()):
            method, _, where = prefix.rpartition(" ")  # "GET /channels/1/messages": that method only
            if (not method or method == route.method) and _path(route).startswith(where):
                del self.refuse[prefix]
                from discord import Forbidden, HTTPException, NotFound

                error = {403: Forbidden, 404: NotFound}.get(status, HTTPException)  # as discord.py's HTTP client
                raise error(_Response(status), {"message": "Missing Permissions" if status == 403 else "Refused",
                                                "code": 50013 if status == 403 else 0})
        path = _path(route)
        from discord import HTTPException, NotFound

        if path.startswith("/channels/") and int(path.split("/")[2]) in self.deleted:
            raise NotFound(_Response(404), {"message": "Unknown Channel", "code": 10003})
        if route.method in {"POST", "PATCH"} and "/messages" in path and (problem := refusal(payload or {})):
            raise HTTPException(_Response(400), {"message": f"Invalid Form Body: {problem}", "code": 50035})
        if route.method == "POST" and (payload or {}).get("enforce_nonce") and payload.get("nonce") in self.nonces:
            return self.nonces[payload["nonce"]]  # Discord answers a repeat with the message it already made
        if route.method == "POST" and path.endswith("/threads"):
            thread_id = self.next_id()
            self.threads.append(thread_id)
            channel_id = int(path.split("/")[2])
            return thread_channel(thread_id, channel_id, (payload or {}).get("name", "thread"))
        if route.method in {"POST", "PATCH"} and "/messages" in path:
            channel_id = path.split("/")[2]
            message_id = path.split("/")[-1] if route.method == "PATCH" else str(self.next_id())
            made = message(int(message_id), int(channel_id), payload or {})
            shown = self.messages.setdefault(int(channel_id), {})
            if route.method == "POST" or message_id in shown:
                shown[message_id] = {**shown.get(message_id, {}), **(payload or {})}  # an edit changes what it names
            if route.method == "POST":
                self.created += 1
                if (payload or {}).get("enforce_nonce"):
                    self.nonces[payload["nonce"]] = made
                self.history.setdefault(int(channel_id), []).append((time.time(), made))
            return made
        if route.method == "DELETE" and path.startswith("/channels/") and "/messages/" in path:
            self.messages.get(int(path.split("/")[2]), {}).pop(path.split("/")[-1], None)
            return {}
        if route.method == "GET" and path.startswith("/channels/") and path.endswith("/messages"):
            return self.messages_after(int(path.split("/")[2]), kwargs.get("params") or {})
        if route.method == "GET" and path.startswith("/users/"):
            return user(int(path.split("/")[2]))
        if route.method == "POST" and path == "/users/@me/channels":  # open a DM
            recipient = int((payload or {})["recipient_id"])
            return {"id": str(recipient + 7000), "type": 1, "recipients": [user(recipient)], "last_message_id": None}
        if route.method == "PUT" and path.endswith("/commands"):
            return [{"id": str(self.next_id()), "application_id": str(APP_ID), "name": c["name"], "type": 1,
                     "description": c.get("description", ""), "version": "1"} for c in payload or []]
        return {}

    async def get_from_cdn(self, url: str) -> bytes:
        self.calls.append(("GET", url, None))
        return self.cdn[url]

    # -- what happened ---------------------------------------------------------------------

    def of(self, method: str, contains: str) -> list[Any]:
        return [payload for m, path, payload in self.calls if m == method and contains in path]

    def posted(self) -> list[dict]:
        """Every message the bot posted or edited in a channel or thread, and every followup."""
        return [p for m, path, p in self.calls if (m in {"POST", "PATCH"} and "/messages" in path)
                or (m == "POST" and path.startswith("/webhooks/"))]

    def texts(self) -> str:
        return "\n".join(text_of(p) for p in self.posted())


MAX_CONTENT, MAX_EMBEDS, MAX_DESCRIPTION, MAX_EMBED_TOTAL, MAX_ROWS = 2000, 10, 4096, 6000, 5


def refusal(payload: dict) -> str | None:
    """What Discord's 400 says of a message over its limits, or None: content over 2,000
    characters, more than 10 embeds, a description over 4,096, embeds over 6,000 in all, more
    than 5 rows of components."""
    if len(payload.get("content") or "") > MAX_CONTENT:
        return "content: Must be 2000 or fewer in length"
    embeds = payload.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        return "embeds: Must be 10 or fewer in length"
    if any(len(e.get("description") or "") > MAX_DESCRIPTION for e in embeds):
        return "embeds.description: Must be 4096 or fewer in length"
    if sum(len(e.get("description") or "") + len(e.get("title") or "") for e in embeds) > MAX_EMBED_TOTAL:
        return "embeds: Embed size exceeds maximum size of 6000"
    if len(payload.get("components") or []) > MAX_ROWS:
        return "components: Must be 5 or fewer in length"
    return None


class FakeWebhooks(AsyncWebhookAdapter):
    """The webhook layer (interaction responses and followups), recording into the stand-in."""

    def __init__(self, stand_in: DiscordStandIn):
        super().__init__()
        self.stand_in = stand_in

    async def request(self, route, session, *, payload=None, multipart=None, files=None, **kwargs) -> Any:
        if multipart:
            payload = next((json.loads(p["value"]) for p in multipart if p.get("name") == "payload_json"), payload)
            payload = {**(payload or {}), "files": [f.filename for f in files or []]}
        path = _path(route)
        self.stand_in.calls.append((route.method, path, payload))
        if path.startswith("/webhooks/") and not path.endswith("/callback") and (problem := refusal(payload or {})):
            from discord import HTTPException

            raise HTTPException(_Response(400), {"message": f"Invalid Form Body: {problem}", "code": 50035})
        if path.endswith("/callback"):
            kind = (payload or {}).get("type", 5)
            return {"interaction": {"id": path.split("/")[2], "type": 2}, "resource": {"type": kind}}
        if path.startswith("/webhooks/"):
            return message(self.stand_in.next_id(), CHANNEL, payload or {})
        return {}


class _Response:
    def __init__(self, status: int):
        self.status, self.reason = status, "Forbidden"


def _path(route) -> str:
    return route.url.split("/api/v10", 1)[-1]


def message(message_id: int, channel_id: int, payload: dict) -> dict[str, Any]:
    return {"id": str(message_id), "channel_id": str(channel_id), "author": BOT_USER, "content": payload.get("content") or "",
            "timestamp": "2026-01-01T00:00:00+00:00", "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": payload.get("embeds") or [],
            "pinned": False, "type": 0, "components": payload.get("components") or [], "flags": payload.get("flags", 0)}


def text_of(payload: dict | None) -> str:
    """The text a posted payload shows: content, embed titles and descriptions, button labels."""
    payload = payload or {}
    parts = [payload.get("content") or ""]
    for embed in payload.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
    for row in payload.get("components") or []:
        parts += [c.get("label") or "" for c in row.get("components", [])]
    return "\n".join(p for p in parts if p)


def buttons_of(payload: dict | None) -> dict[str, str]:
    """Button label -> custom id in a posted payload."""
    return {c["label"]: c["custom_id"] for row in (payload or {}).get("components") or []
            for c in row.get("components", []) if c.get("type") == 2}


# -- gateway-shaped payloads ------------------------------------------------------------------


def guild_create(*threads: int) -> dict[str, Any]:
    return {"id": str(GUILD), "name": "Ladder test", "owner_id": str(OWNER), "roles": [
        {"id": str(GUILD), "name": "@everyone", "permissions": "2199023255551", "position": 0, "color": 0,
         "hoist": False, "managed": False, "mentionable": False}],
            "channels": [text_channel()], "threads": [thread_channel(t) for t in threads],
            "members": [member(OWNER), {**member(int(BOT_USER["id"])), "user": BOT_USER}], "emojis": [],
            "stickers": [], "features": [], "member_count": 2, "large": False, "premium_tier": 0,
            "preferred_locale": "en-US", "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "system_channel_flags": 0,
            "afk_timeout": 300, "joined_at": "2026-01-01T00:00:00+00:00", "voice_states": [], "presences": []}


def interaction(kind: int, data: dict[str, Any], user_id: int = OWNER, channel: dict | None = None,
                message_payload: dict | None = None) -> dict[str, Any]:
    interaction_id = str(next(_interaction_ids))
    payload = {"id": interaction_id, "application_id": str(APP_ID), "type": kind, "token": f"token-{interaction_id}",
               "version": 1, "guild_id": str(GUILD), "channel_id": (channel or text_channel())["id"],
               "channel": channel or text_channel(), "member": member(user_id), "data": data,
               "app_permissions": "2199023255551", "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
               "authorizing_integration_owners": {"0": str(GUILD)}, "context": 0, "attachment_size_limit": 10_485_760}
    if message_payload is not None:
        payload["message"] = message_payload
    return payload


_interaction_ids = itertools.count(7000)


def command(sub: str, options: list[dict] | None = None, group: str | None = None,
            attachments: dict[str, dict] | None = None) -> dict[str, Any]:
    """The data of `/ladder [group] sub options...`."""
    inner = {"name": sub, "type": 1, "options": options or []}
    if group:
        inner = {"name": group, "type": 2, "options": [inner]}
    data = {"id": "1", "name": "ladder", "type": 1, "options": [inner]}
    if attachments:
        data["resolved"] = {"attachments": attachments}
    return data


def attachment(attachment_id: int, name: str, size: int, content_type: str = "text/plain") -> dict[str, Any]:
    return {"id": str(attachment_id), "filename": name, "size": size, "content_type": content_type,
            "url": f"https://cdn.example/{attachment_id}/{name}", "proxy_url": f"https://cdn.example/{attachment_id}/{name}"}


async def settle(bot, timeout: float = 120.0) -> None:
    """Let every task the bot started finish (and the engine's background work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=1)
            continue
        if not await asyncio.to_thread(bot.runtime.engine.idle, 1):
            continue
        return
    raise AssertionError("the bot did not settle")


def use_fake_webhooks(stand_in: DiscordStandIn):
    """Route interaction responses and followups into the stand-in (a context variable)."""
    return async_context.set(FakeWebhooks(stand_in))
