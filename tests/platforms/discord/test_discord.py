"""The Discord bot: the real discord.py command tree, persistent views and modals, fed
gateway-shaped payloads through the bot's own connection state, with the REST and webhook layers
replaced by a recording stand-in. The engine, SQLite and the outbox are real."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import discord
import pytest
from discordstandin import (
    APP_ID,
    BOT_USER,
    CHANNEL,
    GUILD,
    OWNER,
    DiscordStandIn,
    attachment,
    buttons_of,
    command,
    guild_create,
    interaction,
    message,
    settle,
    text_of,
    thread_channel,
    use_fake_webhooks,
)
from trainfiles import tickets, write_jsonl

from bot.chat.engine import Engine
from bot.chat.outbox import Deliverer
from bot.core.config import Settings
from bot.core.store import Store
from bot.platforms.discord.bot import create_bot
from bot.platforms.discord.render import DiscordSender, messages_for


class Discord:
    """One guild talking to one Ladder bot (built inside a running event loop)."""

    def __init__(self, home: Path, stand_in: DiscordStandIn, **settings):
        self.stand_in = stand_in
        self.settings = Settings(_env_file=None, home=home, embedder="lexical", **settings)
        self.store = Store(self.settings.db_path)
        self.engine = Engine(self.store, self.settings)
        self.thread: int | None = None

    async def start(self) -> "Discord":
        self.bot = create_bot(self.engine, self.settings, deliver=False)
        self.bot.http.request = self.stand_in.request
        self.bot.http.get_from_cdn = self.stand_in.get_from_cdn
        use_fake_webhooks(self.stand_in)
        await self.bot._async_setup_hook()
        await self.bot.setup_hook()
        state = self.bot._connection
        state.application_id = APP_ID
        state.user = discord.ClientUser(state=state, data=BOT_USER)
        state.parse_guild_create(guild_create(*([self.thread] if self.thread else [])))
        self.deliverer = Deliverer(self.store, "discord:", DiscordSender(self.bot), min_edit_s=0.0)
        return self

    async def send(self, payload: dict) -> None:
        self.bot._connection.parse_interaction_create(payload)
        await self.settle()

    async def settle(self) -> None:
        await settle(self.bot)
        while await asyncio.to_thread(self.deliverer.run_once):
            pass

    async def slash(self, sub: str, options: list[dict] | None = None, user: int = OWNER, in_thread: bool = False,
                    group: str | None = None, attachments: dict | None = None) -> None:
        channel = thread_channel(self.thread) if in_thread else None
        await self.send(interaction(2, command(sub, options, group, attachments), user, channel))
        if sub == "new" and self.stand_in.threads:
            self.thread = self.stand_in.threads[-1]
            self.bot._connection.parse_thread_create(thread_channel(self.thread))

    def in_thread(self) -> list[dict]:
        return [p for m, path, p in self.stand_in.calls
                if path.startswith(f"/channels/{self.thread}/messages") and m in {"POST", "PATCH"}]

    def button(self, label: str) -> tuple[str, dict]:
        for payload in reversed(self.in_thread() + self.stand_in.of("POST", "/webhooks/")):
            if label in buttons_of(payload):
                return buttons_of(payload)[label], payload
        raise AssertionError(f"no button {label!r}")

    async def click(self, label: str, user: int = OWNER) -> None:
        custom_id, payload = self.button(label)
        await self.send(interaction(3, {"custom_id": custom_id, "component_type": 2}, user,
                                    thread_channel(self.thread), message(4242, self.thread, payload)))

    async def say(self, text: str, user: int = OWNER, attachments: list | None = None) -> None:
        """A message in the project's thread that mentions Ladder (so Discord sends its text)."""
        self.bot._connection.parse_message_create({
            **message(self.stand_in.next_id(), self.thread, {"content": f"<@{BOT_USER['id']}> {text}"}),
            "author": {"id": str(user), "username": f"user{user}", "discriminator": "0", "avatar": None},
            "mentions": [BOT_USER], "guild_id": str(GUILD), "attachments": attachments or [],
        })
        await self.settle()


def run(scenario):
    """Run an async scenario in a fresh event loop."""
    return asyncio.run(scenario())


@pytest.fixture
def stand_in():
    return DiscordStandIn()


def test_help_defers_first_and_answers_with_followups(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("help")
        method, path, payload = stand_in.calls[0]
        assert path.endswith("/callback") and payload["type"] == 5  # deferred, "thinking…", before anything else
        followups = stand_in.of("POST", "/webhooks/")
        assert "Capabilities" in "\n".join(text_of(p) for p in followups)
        assert all(len(p.get("content") or "") <= 2000 for p in followups)

    run(scenario)


def test_a_project_lives_in_a_thread_and_an_interview_runs_by_clicks(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "refunds-bot"}])
        assert world.thread and "Created project **refunds-bot**" in "\n".join(text_of(p) for p in world.in_thread())
        await world.click("Start the interview")
        await world.say("sort refund requests by urgency")  # a reply in the thread: no command needed
        assert "Noted: sort refund requests by urgency." in stand_in.texts()
        question = len([p for m, path, p in stand_in.calls if m == "POST" and path == f"/channels/{world.thread}/messages"])
        await world.click("[ ] Wrong or missing facts")
        edits = stand_in.of("PATCH", f"/channels/{world.thread}/messages/")
        assert edits and "[x] Wrong or missing facts" in text_of(edits[-1])  # the question is edited in place
        assert len([p for m, path, p in stand_in.calls if m == "POST" and path == f"/channels/{world.thread}/messages"]) == question
        for label in ("Done", "No", "Weekly", "Yes", "Yes"):
            await world.click(label)
        assert "**Recommendation: RAG**" in stand_in.texts()

    run(scenario)


def test_a_slash_command_in_the_thread_goes_through_the_outbox_so_later_ticks_edit_its_question(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "slash-edits"}])
        await world.slash("interview", in_thread=True)
        await world.say("sort refund requests by urgency")
        posts = [p for m, path, p in stand_in.calls if m == "POST" and path == f"/channels/{world.thread}/messages"]
        assert any("[ ] Wrong or missing facts" in buttons_of(p) for p in posts)  # a thread message, not a followup
        assert [p for m, p, _ in stand_in.calls if m == "DELETE" and p.endswith("/messages/@original")]  # no "thinking…" left
        await world.click("[ ] Wrong or missing facts")
        edits = stand_in.of("PATCH", f"/channels/{world.thread}/messages/")
        assert edits and "[x] Wrong or missing facts" in text_of(edits[-1])  # the question is edited in place
        after = [p for m, path, p in stand_in.calls if m == "POST" and path == f"/channels/{world.thread}/messages"]
        assert len(after) == len(posts)  # and not posted again

    run(scenario)


def test_an_attachment_is_read_within_the_guild_limit_and_ingested(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "handbook"}])
        doc = attachment(31, "refunds.md", 60, "text/markdown")
        stand_in.cdn[doc["url"]] = b"# Refunds\n\nRefunds are paid within 30 days of the return.\n"
        await world.slash("add", [{"name": "document", "type": 11, "value": "31"}], in_thread=True, group="rag",
                          attachments={"31": doc})
        await world.settle()
        assert "1 added, 0 replaced" in stand_in.texts()
        picture = attachment(32, "cat.png", 60, "image/png")
        await world.slash("add", [{"name": "document", "type": 11, "value": "32"}], in_thread=True, group="rag",
                          attachments={"32": picture})
        refused = stand_in.of("POST", "/webhooks/")[-1]
        assert refused["flags"] == 64 and "cat.png is image/png, not a document" in refused["content"]
        huge = attachment(33, "huge.md", 200_000_000, "text/markdown")
        await world.slash("add", [{"name": "document", "type": 11, "value": "33"}], in_thread=True, group="rag",
                          attachments={"33": huge})
        assert "over the" in stand_in.of("POST", "/webhooks/")[-1]["content"]
        assert not any(url.endswith(("cat.png", "huge.md")) for m, url, _ in stand_in.calls if m == "GET")

    run(scenario)


def test_a_train_launch_checks_permission_in_a_modal_and_a_worker_edits_progress(home, stand_in, tiny_model_dir, tmp_path):
    async def scenario():
        world = await Discord(home, stand_in, base_model=str(tiny_model_dir), trainers=[str(OWNER)]).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "intents"}])
        data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
        sheet = attachment(41, "tickets.jsonl", data.stat().st_size, "application/jsonl")
        stand_in.cdn[sheet["url"]] = data.read_bytes()
        await world.slash("train", [{"name": "dataset", "type": 11, "value": "41"}, {"name": "name", "type": 3,
                                    "value": "discord-v1"}, {"name": "steps", "type": 4, "value": 4}], in_thread=True,
                          attachments={"41": sheet})
        await world.settle()
        assert "Training plan" in stand_in.texts()

        async def launch(user: int, steps: str) -> None:
            await world.click("Launch", user=user)
            modal = stand_in.of("POST", "/callback")[-1]
            assert modal["type"] == 9  # a modal, opened as the first response
            inputs = {c["custom_id"]: c for row in modal["data"]["components"] for c in row["components"]}
            assert set(inputs) == {"base_model", "method", "steps"}
            values = {"base_model": inputs["base_model"].get("value", ""), "method": "lora", "steps": steps}
            await world.send(interaction(5, {"custom_id": modal["data"]["custom_id"], "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": name, "value": value}]}
                for name, value in values.items()]}, user, thread_channel(world.thread)))

        await launch(user=77, steps="6")  # not on LADDER_TRAINERS
        refusal = stand_in.of("POST", "/webhooks/")[-1]
        assert refusal["flags"] == 64 and "only trainers can launch" in refusal["content"]
        assert world.store.jobs() == []
        await launch(user=OWNER, steps="6")
        assert "Queued job 1" in stand_in.texts()

        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--poll", "0.2"],
                                  env={**os.environ, "LADDER_HOME": str(home)}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 120
            while world.store.job(1)["status"] not in {"succeeded", "failed"} and time.time() < deadline:
                await world.settle()
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            await world.settle()
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        assert world.store.job(1)["status"] == "succeeded"
        thread_posts = [(m, p) for m, path, p in stand_in.calls if path.startswith(f"/channels/{world.thread}/messages")]
        progress = [(m, p) for m, p in thread_posts if "Training discord-v1 (job 1)" in text_of(p)]
        assert [m for m, _ in progress].count("POST") == 1 and progress[-1][0] == "PATCH"  # one message, edited
        assert "succeeded" in text_of(progress[-1][1]) and "step 6/6" in text_of(progress[-1][1])
        assert any("loss.png" in (p.get("files") or []) for m, p in thread_posts)  # the loss curve, as a file
        assert "Adapter **discord-v1** is registered" in stand_in.texts()

    run(scenario)


def test_blind_compare_vote_and_reveal(stand_in, world):
    from bot.arena.chat import blind_text

    async def scenario():
        bot_world = await Discord(world["settings"].home, stand_in, base_model=world["settings"].base_model,
                                  inference_url=world["url"]).start()
        await bot_world.slash("use", [{"name": "project", "type": 3, "value": "arena"}])
        bot_world.thread = stand_in.threads[-1]
        bot_world.bot._connection.parse_thread_create(thread_channel(bot_world.thread))
        await bot_world.slash("compare", [{"name": "prompt", "type": 3, "value": "my kettle broke"},
                                          {"name": "variants", "type": 3, "value": "base,lora:alpha"}], in_thread=True)
        await bot_world.settle()
        battle = bot_world.store.db.execute("SELECT id, variant_a, variant_b, answer_a, answer_b FROM battles "
                                            "ORDER BY created_at DESC").fetchone()
        before_vote = json.dumps(stand_in.calls, default=str)  # everything the bot sent Discord until the vote
        assert "lora:alpha" not in before_vote and battle[0] not in before_vote and "latency" not in before_vote
        assert not re.search(r"\d ?ms\b|\d tokens", stand_in.texts())
        shown = [text_of(p) for p in stand_in.messages[bot_world.thread].values()]
        for side, answer in zip("AB", battle[3:]):  # each streamed answer is one message under its side's title
            cards = [text for text in shown if f"**Answer {side}**" in text]
            assert len(cards) == 1 and (blind_text(answer) or "(empty answer)") in cards[0]
            assert not cards[0].endswith(" ▌")
        await bot_world.click("B is better", user=55)
        reveal = text_of(bot_world.in_thread()[-1])
        assert "You voted: B is better" in reveal and f"**B** was {battle[2]} (" in reveal and "lora:alpha" in reveal

    run(scenario)


def test_a_button_still_works_after_the_bot_is_rebuilt(home, stand_in):
    async def scenario():
        first = await Discord(home, stand_in).start()
        await first.slash("new", [{"name": "name", "type": 3, "value": "restarts"}])
        custom_id, payload = first.button("Show status")
        await first.bot.close()
        # A new process: a new bot object, the same SQLite store.
        second = Discord(home, stand_in)
        second.thread = first.thread
        await second.start()
        before = len(second.in_thread())
        await second.send(interaction(3, {"custom_id": custom_id, "component_type": 2}, OWNER,
                                      thread_channel(second.thread), message(4243, second.thread, payload)))
        # The status: the ladder checklist, the counts and the next step's button.
        assert "Project restarts" in " ".join(text_of(m) for m in second.in_thread()[before:])

    run(scenario)


def test_long_output_is_split_and_only_a_refusal_for_good_is_not_retried(home, stand_in):
    from bot.chat.messages import Table, Text

    messages = messages_for(Text("word " * 3000))
    assert all(len(e.description) <= 4096 for m in messages for e in m.embeds)
    assert all(sum(len(e.description) for e in m.embeds) <= 6000 for m in messages) and len(messages) == 4
    table = Table(("a",), tuple(("x" * 90,) for _ in range(100)), "long")
    assert messages_for(table)[0].files[0][0] == "long.csv"

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "walls"}])
        stand_in.refuse[f"/channels/{world.thread}/messages"] = 403
        world.engine.outbox.post(f"discord:{GUILD}:{CHANNEL}:{world.thread}", Text("hello"))
        await world.settle()
        row = world.store.db.execute("SELECT failed_at, error, attempts FROM outbox ORDER BY id DESC").fetchone()
        assert row[0] is not None and row[1].startswith("Ladder has no permission there (403)") and row[2] == 1
        stand_in.refuse[f"/channels/{world.thread}/messages"] = 401  # a token being rotated: kept, retried
        world.engine.outbox.post(f"discord:{GUILD}:{CHANNEL}:{world.thread}", Text("after rotation"))
        await world.settle()
        row = world.store.db.execute("SELECT failed_at, error, attempts FROM outbox ORDER BY id DESC").fetchone()
        assert row[0] is None and "401" in row[1] and row[2] == 1

    run(scenario)


def lose_first_answer(world) -> list:
    """Make the deliverer's next send reach Discord but lose its answer (a timeout, a crash);
    return the list that then holds the id of the message Discord made."""
    real, lost = world.deliverer.send, []

    def answer_lost_once(item, previous):
        ref = real(item, previous)
        if not lost:
            lost.append(ref)
            raise TimeoutError("no answer from Discord")
        return ref

    answer_lost_once.find = real.find
    world.deliverer.send = answer_lost_once
    return lost


def test_a_send_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(home, stand_in):
    from bot.chat.messages import Progress

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "nonces"}])
        place = f"discord:{GUILD}:{CHANNEL}:{world.thread}"
        world.engine.outbox.post(place, Progress("copy-1", "copying 1/2", 1, 2))
        await asyncio.to_thread(world.deliverer.run_once)
        earlier = world.engine.outbox.ref(place, "copy-1")
        created, message = stand_in.history[world.thread][-1]
        stand_in.history[world.thread][-1] = (created - 60, message)  # it was posted a minute ago
        lost = lose_first_answer(world)
        made = stand_in.created
        item = world.engine.outbox.post(place, Progress("copy-2", "copying 1/2", 1, 2))  # the same words
        await asyncio.to_thread(world.deliverer.run_once)
        assert lost and not world.store.db.execute("SELECT delivered_at FROM outbox WHERE id = ?", [item]).fetchone()[0]
        stand_in.nonces.clear()  # the retry comes later than Discord remembers nonces (minutes)
        world.store.db.execute("UPDATE outbox SET due_at = '' WHERE id = ?", [item])  # its retry is due now
        world.store.db.conn.commit()
        await asyncio.to_thread(world.deliverer.run_once)
        assert stand_in.created == made + 1  # found among the thread's latest messages: not posted again
        assert world.store.db.execute("SELECT delivered_at FROM outbox WHERE id = ?", [item]).fetchone()[0]
        assert world.engine.outbox.ref(place, "copy-2") == lost[0] != earlier  # this send's, not the older twin

    run(scenario)


def test_a_lost_answer_where_history_cannot_be_read_is_sent_again_under_its_nonce(home, stand_in):
    from bot.chat.messages import Text

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "nonces"}])
        lose_first_answer(world)
        made = stand_in.created
        item = world.engine.outbox.post(f"discord:{GUILD}:{CHANNEL}:{world.thread}", Text("exactly once"))
        await asyncio.to_thread(world.deliverer.run_once)
        stand_in.refuse[f"GET /channels/{world.thread}/messages"] = 403  # no Read Message History permission
        world.store.db.execute("UPDATE outbox SET due_at = '' WHERE id = ?", [item])
        world.store.db.conn.commit()
        await asyncio.to_thread(world.deliverer.run_once)
        sends = [p for p in world.in_thread() if text_of(p) == "exactly once"]
        assert len(sends) == 2 and sends[0]["nonce"] == sends[1]["nonce"]  # sent twice, with one nonce
        assert stand_in.created == made + 1  # so Discord made one message
        assert world.store.db.execute("SELECT delivered_at FROM outbox WHERE id = ?", [item]).fetchone()[0]

    run(scenario)


def test_a_send_that_times_out_is_cancelled_not_left_running(home, stand_in):
    from bot.chat.messages import Text

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "slowpoke"}])
        deliverer = Deliverer(world.store, "discord:", DiscordSender(world.bot, timeout_s=0.2), min_edit_s=0.0)
        stand_in.slow[f"/channels/{world.thread}/messages"] = 30.0
        created = stand_in.created
        item = world.engine.outbox.post(f"discord:{GUILD}:{CHANNEL}:{world.thread}", Text("too slow"))
        await asyncio.to_thread(deliverer.run_once)
        row = world.store.db.execute("SELECT attempts, error, delivered_at FROM outbox WHERE id = ?", [item]).fetchone()
        assert row[0] == 1 and "did not answer within 0.2 s" in row[1] and row[2] is None  # retried later
        for _ in range(100):  # the cancellation lands on the bot's loop: let it run
            if stand_in.abandoned:
                break
            await asyncio.sleep(0.01)
        assert stand_in.abandoned == [f"/channels/{world.thread}/messages"] and stand_in.created == created

    run(scenario)


def test_a_deleted_thread_fails_its_replies_for_good_and_tells_the_asker_once_in_a_dm(home, stand_in):
    from bot.chat.messages import Text

    async def scenario():
        world = await Discord(home, stand_in).start()
        sender = DiscordSender(world.bot)
        world.deliverer = Deliverer(world.store, "discord:", sender, min_edit_s=0.0, notify=sender.notify)
        await world.slash("new", [{"name": "name", "type": 3, "value": "gone"}])
        stand_in.deleted.add(world.thread)  # someone deletes the project's thread
        for text in ("first", "second"):
            world.engine.outbox.post(f"discord:{GUILD}:{CHANNEL}:{world.thread}", Text(text), asked_by=str(OWNER))
        await world.settle()
        rows = world.store.db.execute("SELECT error, attempts FROM outbox WHERE failed_at IS NOT NULL").fetchall()
        assert len(rows) == 2 and all(e.startswith("the channel, thread or message is gone (404)") and a == 1
                                      for e, a in rows)
        dms = [p for m, path, p in stand_in.calls if m == "POST" and path == f"/channels/{OWNER + 7000}/messages"]
        assert len(dms) == 1 and "could not post a reply" in dms[0]["content"]  # once, not once per reply
        assert "ladder outbox retry" in dms[0]["content"]

    run(scenario)


def test_missing_token_is_one_line_naming_the_variable(home):
    env = {k: v for k, v in os.environ.items() if "DISCORD" not in k}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "discord"], capture_output=True, text=True,
                            env={**env, "LADDER_HOME": str(home)}, timeout=60)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "DISCORD_TOKEN is not set" in result.stderr


def test_intents_are_minimal_and_sync_is_the_owners(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in, discord_guild=GUILD).start()
        assert not world.bot.intents.message_content and not world.bot.intents.members
        commands = world.bot.tree.get_commands()
        assert [c.name for c in commands] == ["ladder"]
        names = {c.qualified_name for c in commands[0].walk_commands()}
        assert {"ladder help", "ladder new", "ladder rag add", "ladder data check", "ladder train", "ladder compare",
                "ladder cancel", "ladder eval"} <= names
        assert stand_in.of("PUT", "/commands") == []  # nothing synced on start
        world.bot.owner_id = OWNER
        for author, expected in ((77, "Only the bot's owner"), (OWNER, "Synced")):
            world.bot._connection.parse_message_create({
                **message(stand_in.next_id(), CHANNEL, {"content": f"<@{BOT_USER['id']}> sync"}),
                "author": {"id": str(author), "username": "u", "discriminator": "0", "avatar": None},
                "mentions": [BOT_USER], "guild_id": str(GUILD)})
            await world.settle()
            assert expected in text_of(stand_in.of("POST", f"/channels/{CHANNEL}/messages")[-1])
        assert stand_in.of("PUT", f"/guilds/{GUILD}/commands")

    run(scenario)


def test_no_message_pings_anyone(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("help")
        await world.slash("new", [{"name": "name", "type": 3, "value": "pings"}])
        sent = [p for p in stand_in.posted() + stand_in.of("POST", "/webhooks/")
                if p and (p.get("content") or p.get("embeds"))]
        assert sent and all(p.get("allowed_mentions") == {"parse": []} for p in sent), sent

    run(scenario)


def test_a_mention_that_is_a_chat_line_logs_no_command_not_found(home, stand_in, caplog):
    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "chatty"}])
        with caplog.at_level(logging.DEBUG):
            await world.say("sort refund requests by urgency")
        assert not [r for r in caplog.records if "CommandNotFound" in (r.getMessage() + str(r.exc_info))]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    run(scenario)


def test_ladder_in_a_direct_message_keeps_the_project_in_the_dm(home, stand_in):
    from discordstandin import OWNER, user

    def dm(sub: str, options: list[dict] | None = None) -> dict:
        payload = interaction(2, command(sub, options), OWNER, {"id": "5550001", "type": 1, "recipients": [user(OWNER)]})
        for key in ("guild_id", "member", "guild_locale"):
            payload.pop(key)
        return {**payload, "user": user(OWNER), "context": 1}

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.send(dm("new", [{"name": "name", "type": 3, "value": "private-bot"}]))
        await world.send(dm("status"))
        said = "\n".join(text_of(p) for p in stand_in.posted() + stand_in.of("POST", "/webhooks/"))
        assert "Created project **private-bot**" in said and "private-bot" in said.split("Created project", 1)[1]
        assert "Something went wrong" not in said and not stand_in.threads  # no thread, no crash
        assert world.store.project_for_place("discord:@me:5550001")["name"] == "private-bot"

    run(scenario)


def test_an_answer_streams_as_edits_of_one_message_and_ends_with_the_sources_embed(home, stand_in):
    async def scenario():
        world = await Discord(home, stand_in).start()  # the default model writes the answer
        await world.slash("new", [{"name": "name", "type": 3, "value": "handbook"}])
        doc = attachment(31, "refunds.md", 60, "text/markdown")
        stand_in.cdn[doc["url"]] = b"# Refunds\n\nRefunds are paid within 30 days of the return.\n"
        await world.slash("add", [{"name": "document", "type": 11, "value": "31"}], in_thread=True, group="rag",
                          attachments={"31": doc})
        await world.settle()
        before = set(stand_in.messages.get(world.thread, {}))
        stop = threading.Event()
        deliverer = Deliverer(world.store, "discord:", DiscordSender(world.bot), min_edit_s=0.3)
        delivering = asyncio.create_task(asyncio.to_thread(deliverer.run, stop, 0.05))
        try:
            world.bot._connection.parse_interaction_create(interaction(  # settle() would wait on the deliverer too
                2, command("ask", [{"name": "question", "type": 3, "value": "when are refunds paid?"}]), OWNER,
                thread_channel(world.thread)))
            while not any("Sources" in text_of(p) for p in stand_in.messages[world.thread].values()):
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await delivering
        await world.settle()
        answer = [mid for mid, p in stand_in.messages[world.thread].items()
                  if mid not in before and "Sources" in text_of(p)]
        assert len(answer) == 1
        edits = [p for p in stand_in.of("PATCH", f"/channels/{world.thread}/messages/{answer[0]}")]
        assert len(edits) >= 2 and any(p["content"].endswith(" ▌") for p in edits)  # edited as the words came
        final = stand_in.messages[world.thread][answer[0]]
        assert "30 days" in final["content"] and not final["content"].endswith(" ▌")
        assert "refunds.md" in final["embeds"][0]["description"]
        shown = [text_of(p) for mid, p in stand_in.messages[world.thread].items() if mid not in before]
        assert sum(final["content"] in text for text in shown) == 1  # the answer is in one message, once

        # Its thumbs up and down are buttons on it; a press is stored against the answer.
        assert {"👍 Helpful", "👎 Not helpful"} <= set(buttons_of(final))
        await world.click("👍 Helpful")
        await world.click("👍 Helpful", user=77)
        assert world.store.db.execute("SELECT count(*), sum(rating) FROM feedback").fetchone() == (2, 2)
        assert "It has 2 👍 and 0 👎" in text_of(world.in_thread()[-1])

    run(scenario)


def test_a_streamed_answer_past_2000_characters_continues_in_a_new_message(home, stand_in):
    from bot.chat.messages import Stream
    from bot.chat.outbox import Item

    async def scenario():
        world = await Discord(home, stand_in).start()
        await world.slash("new", [{"name": "name", "type": 3, "value": "long"}])
        sender = DiscordSender(world.bot)
        place = f"discord:{GUILD}:{world.thread}"

        def send(text: str, previous: str | None, done: bool = False, version: int = 1) -> str:
            item = Item(9, place, "q-answer", Stream("q-answer", text, done=done, footer="**Sources**\n\n[1] a.md"),
                        version, 0)
            return sender(item, previous)

        ref = await asyncio.to_thread(send, "word " * 300, None)
        ref = await asyncio.to_thread(send, "word " * 700, ref, False, 2)  # 3,500 characters: two messages
        ids = ref.split(",")
        shown = stand_in.messages[world.thread]
        assert len(ids) == 2 and all(len(shown[i]["content"]) <= 2000 for i in ids)
        assert shown[ids[1]]["content"].endswith(" ▌") and not shown[ids[0]]["content"].endswith(" ▌")
        first_edits = len(stand_in.of("PATCH", f"/messages/{ids[0]}"))
        ref = await asyncio.to_thread(send, "A short checked answer.", ref, True, 3)  # rewritten, shorter
        assert ref == ids[0] and ids[1] not in shown  # the part it no longer needs is deleted
        assert shown[ids[0]]["content"] == "A short checked answer." and "a.md" in text_of(shown[ids[0]])
        assert len(stand_in.of("PATCH", f"/messages/{ids[0]}")) == first_edits + 1

    run(scenario)
