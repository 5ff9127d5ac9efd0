"""The arena: variants of the same model answer one prompt, blind, and the team votes.

Variants: `base` (the project's system prompt and few-shot examples from prompts/arena.yaml),
`rag` (base plus retrieved context), `lora:NAME` (an adapter) and `lora+rag:NAME`. A battle draws
(or is given) two variants, randomises left and right, hides the names until a vote, and keeps
everything in SQLite so its buttons work after a restart. Modelled on Chatbot Arena's battles.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from importlib import resources
from typing import Any

import yaml

from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.migrations import now
from bot.core.store import Store
from bot.serving.client import InferenceClient, ModelNotServed

ADAPTER_NAME = re.compile(r"^[\w-]+$")  # new names are stricter (see jobs.plan_job); parse any registered one
WINNERS = {"a": "A is better", "b": "B is better", "tie": "Tie", "bad": "Both are bad"}
# Greedy, so the same prompt gets the same answer; the frequency penalty (answer tokens only) ends
# the loops small models fall into: SmolLM2's base answers went from 200 looping tokens to 71.
GENERATION = {"max_tokens": 256, "temperature": 0.0, "frequency_penalty": 0.5}


@dataclass
class VariantAnswer:
    """One variant's answer to a prompt, with its cost."""

    variant: str
    text: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def arena_prompts() -> dict[str, Any]:
    """Return prompts/arena.yaml."""
    return yaml.safe_load(resources.files("prompts").joinpath("arena.yaml").read_text(encoding="utf-8"))


def system_messages(store: Store, project: dict[str, Any]) -> list[dict[str, str]]:
    """Return the base variant's system prompt and few-shot turns for a project."""
    spec = arena_prompts()
    task = store.answers(project["id"]).get("task") or project.get("description") or spec["default_task"]
    messages = [{"role": "system", "content": spec["system"].format(task=task).strip()}]
    for shot in spec.get("few_shot") or []:
        messages += [{"role": "user", "content": shot["user"]}, {"role": "assistant", "content": shot["assistant"]}]
    return messages


@dataclass(frozen=True)
class Variant:
    """One way of answering: `base`, `rag`, `lora:NAME` or `lora+rag:NAME`, parsed once.

    Parsed, never substring-matched: an adapter called `rag-tuned` or `storage-v1` is a plain
    LoRA variant and never retrieves.
    """

    kind: str  # base | rag | lora | lora+rag
    adapter: str | None = None

    @property
    def uses_rag(self) -> bool:
        return self.kind in {"rag", "lora+rag"}

    def __str__(self) -> str:
        return f"{self.kind}:{self.adapter}" if self.adapter else self.kind


def parse_variant(text: str) -> Variant | None:
    """Return the variant written as `text`, or None when it is not one."""
    kind, sep, name = text.strip().partition(":")
    if not sep:
        return Variant(kind) if kind in {"base", "rag"} else None
    if kind in {"lora", "lora+rag"} and ADAPTER_NAME.match(name):
        return Variant(kind, name)
    return None


def adapter_of(variant: str) -> str | None:
    """Return the adapter name of a lora variant, else None."""
    parsed = parse_variant(variant)
    return parsed.adapter if parsed else None


def parse_variants(spec: str, store: Store, project: dict[str, Any]) -> list[str]:
    """Return the variants in "base,rag,lora:NAME,lora+rag:NAME"; raise LadderError naming a bad one.

    Checks only the registry (no model is loaded), so a typo is refused at once.
    """
    variants = [v.strip() for v in spec.split(",") if v.strip()]
    if not variants:
        raise LadderError("name the variants, like `base,rag,lora:NAME`")
    adapters = {a["name"] for a in store.adapters(project["id"])}
    for text in variants:
        variant = parse_variant(text)
        if variant is None:
            raise LadderError(f"unknown variant {text!r}; use base, rag, lora:NAME or lora+rag:NAME")
        if variant.adapter and variant.adapter not in adapters:
            raise LadderError(f"no adapter named {variant.adapter!r} in {project['name']} "
                              f"(adapters: {', '.join(sorted(adapters)) or 'none yet'})")
        if variant.uses_rag and not store.documents(project["id"]):
            raise LadderError(f"variant {text!r} needs documents; add some with `rag add` or `ladder rag ingest`")
    if len(set(variants)) != len(variants):
        raise LadderError("each variant may appear once")
    return variants


def available_variants(store: Store, project: dict[str, Any]) -> list[str]:
    """Return every variant the project can answer with now."""
    variants = ["base"]
    rag = bool(store.documents(project["id"]))
    if rag:
        variants.append("rag")
    for adapter in store.adapters(project["id"]):
        variants.append(f"lora:{adapter['name']}")
        if rag:
            variants.append(f"lora+rag:{adapter['name']}")
    return variants


def base_model_for(settings: Settings, store: Store, project: dict[str, Any], variants: list[str] | None = None) -> str:
    """Return the base model a project's variants run on: the one its adapters were trained on.

    The adapters named in `variants` decide (else the newest adapter of the project); with no
    adapter at all it is LADDER_BASE_MODEL. So train -> compare needs no extra setting. Raises
    LadderError when the named adapters were trained on different base models.
    """
    adapters = store.adapters(project["id"])  # newest first
    named = {adapter_of(v) for v in variants or []} - {None}
    relevant = [a for a in adapters if a["name"] in named] if named else adapters
    bases = sorted({a["base_model"] for a in relevant})
    if named and len(bases) > 1:
        raise LadderError(f"{', '.join(sorted(f'lora:{n}' for n in named))} were trained on different base models "
                          f"({', '.join(bases)}); compare adapters of one base model at a time")
    return relevant[0]["base_model"] if relevant else settings.base_model


def arena_for(settings: Settings, store: Store, project: dict[str, Any], variants: list[str]) -> "Arena":
    """Return an arena answering on the base model of `variants` (see `base_model_for`): the
    embedded server for it, or LADDER_INFERENCE_URL. Parse the variants first, so a typo is
    refused before any model loads."""
    from bot.serving.client import client_for

    return Arena(settings, store, client_for(settings, store, base_model_for(settings, store, project, variants)))


class Arena:
    """Answers, battles, votes and the reveal for one project."""

    def __init__(self, settings: Settings, store: Store, client: InferenceClient):
        self.settings = settings
        self.store = store
        self.client = client

    def messages_for(self, project: dict[str, Any], variant: str, prompt: str,
                     history: list[dict[str, str]] | None = None) -> tuple[str, list[dict[str, str]], list[str]]:
        """Return (model id, messages, sources) for one variant.

        `history` holds earlier turns of a conversation (an eval item in chat or ShareGPT form):
        its system messages join the system prompt, the other turns come before `prompt`.
        """
        from rag.answer import build_messages, select_facts
        from rag.index import KnowledgeBase

        base = system_messages(self.store, project)
        history = history or []
        extra_system = "\n\n".join(m["content"] for m in history if m["role"] == "system")
        if extra_system:
            base = [{"role": "system", "content": base[0]["content"] + "\n\n" + extra_system}, *base[1:]]
        turns = [m for m in history if m["role"] != "system"]
        sources: list[str] = []
        parsed = parse_variant(variant)
        if parsed is None:
            raise LadderError(f"unknown variant {variant!r}; use base, rag, lora:NAME or lora+rag:NAME")
        facts = []
        if parsed.uses_rag:
            kb = KnowledgeBase(self.settings, self.store)
            hits = kb.retrieve(project, prompt, k=3)
            facts = select_facts(prompt, hits, kb.embedder.function, relevant=kb.embedder.relevant)
            sources = [h.source for h in hits] if facts else []
        if facts:
            rag_messages = build_messages(prompt, facts)
            messages = [{"role": "system", "content": base[0]["content"] + "\n\n" + rag_messages[0]["content"]},
                        *base[1:], *rag_messages[1:-1], *turns, rag_messages[-1]]
        else:  # no variant retrieves, or nothing retrieved is close to the prompt: answer without context
            messages = [*base, *turns, {"role": "user", "content": prompt}]
        model = f"{project['name']}/{parsed.adapter}" if parsed.adapter else "base"
        return model, messages, sources

    def answer(self, project: dict[str, Any], variants: list[str], prompt: str,
               history: list[dict[str, str]] | None = None, max_tokens: int | None = None,
               on_draft: Callable[[int, str], None] | None = None,
               stop: threading.Event | None = None) -> list[VariantAnswer]:
        """Return every variant's answer, generated concurrently (the server batches them), each
        at most `max_tokens` long (default GENERATION's). With `on_draft`, the answers stream:
        `on_draft(i, text)` gets variant i's text so far as it grows, and `stop` being set ends
        them all (Stopped, with the first one to notice's text)."""
        if not prompt.strip():
            raise LadderError("the prompt is empty; give the arena something to answer")
        prepared = [(v, *self.messages_for(project, v, prompt, history), max_tokens) for v in variants]
        streams = [None if on_draft is None else partial(on_draft, i) for i in range(len(prepared))]
        with ThreadPoolExecutor(max_workers=len(prepared)) as pool:
            return list(pool.map(lambda item, on_text: self._complete(project, *item, on_text=on_text, stop=stop),
                                 prepared, streams))

    def answer_each(self, project: dict[str, Any], variant: str, items: list[dict[str, Any]],
                    workers: int = 32) -> Iterator[tuple[int, VariantAnswer]]:
        """Yield (index of the item, `variant`'s answer) for each item ({prompt, history,
        max_tokens}), a wave at a time.

        Every prompt is prepared first (retrieval included) and the prompts are sorted by length,
        so a wave pads little; a wave of `workers` requests goes out at once and the next one
        when it is answered, so the server fills whole batches of one variant whose answers end
        together (a batch mixing a rambling base with a terse adapter runs to the longest).
        Waves are of equal size, at most `workers`: 100 items at 32 go as four waves of 25, not
        three of 32 and a straggler of 4, which a CPU would answer below the batch size where
        bf16 and merged adapters pay (a wave of 4 took longer than one of 32).
        """
        prepared = [(variant, *self.messages_for(project, variant, it["prompt"], it.get("history")),
                     it.get("max_tokens")) for it in items]
        order = sorted(range(len(prepared)), key=lambda i: sum(len(m["content"]) for m in prepared[i][2]))
        waves = max(1, -(-len(order) // max(1, workers)))
        size = -(-len(order) // waves) if order else 1
        with ThreadPoolExecutor(max_workers=size) as pool:
            for start in range(0, len(order), size):
                wave = order[start:start + size]
                yield from zip(wave, pool.map(lambda i: self._complete(project, *prepared[i]), wave))

    def _complete(self, project: dict[str, Any], variant: str, model: str, messages: list[dict[str, str]],
                  sources: list[str], max_tokens: int | None, on_text: Callable[[str], None] | None = None,
                  stop: threading.Event | None = None) -> VariantAnswer:
        """Return one variant's answer to prepared `messages` (see `messages_for`), streamed to
        `on_text` when given (see `InferenceClient.complete_streamed`)."""
        from rag.answer import drop_invalid_citations

        params = {**GENERATION, **({"max_tokens": max_tokens} if max_tokens else {})}

        def generate():
            if on_text is None:
                return self.client.complete(messages, model, **params)
            return self.client.complete_streamed(messages, model, on_text=on_text, stop=stop, **params)

        try:
            done = generate()
        except ModelNotServed:  # a server (vLLM) that lost or never loaded the adapter: load it, once
            if model == "base" or not self._register(project, model):
                raise
            done = generate()
        # in RAG answers, a citation that matches no retrieved passage is never shown
        text = drop_invalid_citations(done.text, len(sources)) if sources else done.text.strip()
        return VariantAnswer(variant, text, done.latency_ms, done.prompt_tokens, done.completion_tokens, sources)

    def _register(self, project: dict[str, Any], model: str) -> bool:
        """Ask the inference server to load the project's adapter `model` (PROJECT/NAME)."""
        adapter = self.store.adapter(project["id"], model.rpartition("/")[2])
        if adapter is None:
            return False
        self.client.register_adapter(model, adapter["path"])
        return True

    def battle(self, project: dict[str, Any], prompt: str, user: str, variants: list[str] | None = None,
               place: str | None = None, rng: random.Random | None = None,
               on_draft: Callable[[str, str], None] | None = None,
               stop: threading.Event | None = None) -> dict[str, Any]:
        """Open a blind battle between two variants (given, or drawn) and return it. With
        `on_draft`, the answers stream: `on_draft(side, text)` gets side "a" or "b"'s text so far,
        and nothing else (no variant, no timing) until the battle is stored; a battle stopped
        part-way (`stop`) raises Stopped and is not stored.

        Raises LadderError when fewer than two variants are available.
        """
        rng = rng or random.SystemRandom()
        pool = variants or available_variants(self.store, project)
        if len(pool) < 2:
            raise LadderError(
                f"a battle needs two variants and {project['name']} has only {', '.join(pool)}; add documents "
                "(`rag add`) or train an adapter (`train`)"
            )
        pair = rng.sample(pool, 2)  # random pair in random order: position says nothing
        sided = None if on_draft is None else (lambda i, text: on_draft("ab"[i], text))
        a, b = self.answer(project, pair, prompt, on_draft=sided, stop=stop)
        return self.record(project, prompt, a, b, user, place)

    def record(self, project: dict[str, Any], prompt: str, a: "VariantAnswer", b: "VariantAnswer", user: str,
               place: str | None = None) -> dict[str, Any]:
        """Store a blind battle of two answers to `prompt` (a shown as A, b as B) and return it."""
        battle_id = "b" + secrets.token_hex(6)
        registered = {row["name"]: row["id"] for row in self.store.adapters(project["id"])}
        with self.store.atomic() as db:
            db["battles"].insert({
                "id": battle_id, "project_id": project["id"], "prompt": prompt,
                "variant_a": a.variant, "variant_b": b.variant, "answer_a": a.text, "answer_b": b.text,
                "adapter_a": registered.get(adapter_of(a.variant)), "adapter_b": registered.get(adapter_of(b.variant)),
                "latency_a_ms": a.latency_ms, "latency_b_ms": b.latency_ms, "place": place,
                "created_by": user, "created_at": now(),
                "details": json.dumps({"a": a.to_dict(), "b": b.to_dict()}),
            })
        return self.get(battle_id)

    def get(self, battle_id: str) -> dict[str, Any]:
        """Return a battle with its votes; raise LadderError for an unknown id."""
        rows = list(self.store.db["battles"].rows_where("id = ?", [battle_id]))
        if not rows:
            raise LadderError(f"there is no battle {battle_id!r}; `ladder compare` prints battle ids")
        battle = {**rows[0], "details": json.loads(rows[0]["details"] or "{}")}
        battle["votes"] = list(self.store.db["votes"].rows_where("battle_id = ?", [battle_id], order_by="created_at"))
        return battle

    def vote(self, battle_id: str, user: str, winner: str) -> dict[str, Any]:
        """Record (or change) `user`'s vote and return the revealed battle.

        Raises LadderError for an unknown battle or a winner other than a, b, tie or bad.
        """
        winner = winner.strip().lower()
        if winner not in WINNERS:
            raise LadderError(f"unknown vote {winner!r}; vote a, b, tie or bad (both bad)")
        battle = self.get(battle_id)
        with self.store.atomic() as db:
            existing = db.execute("SELECT created_at FROM votes WHERE battle_id = ? AND user = ?", [battle_id, user]).fetchone()
            db["votes"].upsert({
                "battle_id": battle_id, "user": user, "winner": winner,
                "created_at": existing[0] if existing else now(), "updated_at": now(),
            }, pk=("battle_id", "user"))
            self.store.audit(user, "arena.vote", battle["project_id"], battle_id,
                             {"winner": winner, "changed": bool(existing)})  # nests in this transaction
        revealed = self.get(battle_id)
        revealed["changed"] = bool(existing)
        return revealed

    def battles(self, project: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the project's battles, oldest first, with their votes."""
        ids = [r["id"] for r in self.store.db["battles"].rows_where("project_id = ?", [project["id"]], order_by="created_at")]
        return [self.get(i) for i in ids]


def entry(variant: str, adapter_id: int | None, current: dict[str, int]) -> str:
    """Return the leaderboard entry of a battle side: the variant, or, for an adapter that has
    since been re-trained or deleted, the variant marked with the old adapter's id."""
    name = adapter_of(variant)
    if name is None or adapter_id is None or current.get(name) == adapter_id:
        return variant
    return f"{variant} (old #{adapter_id})"


def outcomes(battles: list[dict[str, Any]], current: dict[str, int] | None = None) -> list[tuple[str, str, float]]:
    """Return one (entry a, entry b, score of a) per voted battle: the mean of its votes, where a
    vote for a is 1, for b 0, and a tie or "both bad" 0.5.

    One battle counts once however many people voted on it. `current` maps adapter names to
    their registered ids, so answers of a re-trained adapter form a new entry.
    """
    scores = {"a": 1.0, "b": 0.0, "tie": 0.5, "bad": 0.5}
    current = current or {}
    rows = []
    for battle in battles:
        if not battle["votes"]:
            continue
        score = sum(scores[v["winner"]] for v in battle["votes"]) / len(battle["votes"])
        rows.append((entry(battle["variant_a"], battle.get("adapter_a"), current),
                     entry(battle["variant_b"], battle.get("adapter_b"), current), score))
    return rows


def run_compare(arena: "Arena", project: dict[str, Any], prompt: str, variants: list[str] | None, user: str,
                place: str | None = None, show_all: bool = False,
                on_draft: Callable[[str, str], None] | None = None,
                stop: threading.Event | None = None) -> dict[str, Any]:
    """Answer `prompt` and return {prompt, answers[, battle_id]}: every variant side by side
    (`show_all`), or a blind battle of two drawn from `variants` (default: all available), its
    answers labelled by side. The chat and `ladder compare` both come here. With `on_draft`,
    the answers stream: `on_draft(label, text)`, the label the variant's name (`show_all`) or
    its side ("a", "b") in a battle."""
    if show_all:
        chosen = variants or available_variants(arena.store, project)
        named = None if on_draft is None else (lambda i, text: on_draft(chosen[i], text))
        answers = arena.answer(project, chosen, prompt, on_draft=named, stop=stop)
        return {"prompt": prompt, "answers": [a.to_dict() for a in answers]}
    battle = arena.battle(project, prompt, user, variants, place, on_draft=on_draft, stop=stop)
    return {"battle_id": battle["id"], "prompt": prompt,
            "answers": [{"side": side, **battle["details"][side]} for side in ("a", "b")]}


def standings(store: Store, project: dict[str, Any]) -> dict[str, Any]:
    """Return the project's leaderboard: every voted battle once, a re-trained adapter as a new entry."""
    from bot.arena.leaderboard import leaderboard

    battles = Arena(None, store, None).battles(project)
    current = {a["name"]: a["id"] for a in store.adapters(project["id"])}
    results = outcomes(battles, current)
    entries = {name for a, b, _ in results for name in (a, b)} | set(available_variants(store, project))
    return {"project": project["name"],
            **leaderboard(results, sorted(entries), votes=sum(len(b["votes"]) for b in battles))}


def preferences(battles: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Return DPO rows {prompt, chosen, rejected}: one per battle whose votes prefer a side."""
    rows = []
    for battle in battles:
        a = sum(1 for v in battle["votes"] if v["winner"] == "a")
        b = sum(1 for v in battle["votes"] if v["winner"] == "b")
        if a == b:
            continue  # ties, "both bad" and split votes teach no preference
        chosen, rejected = (battle["answer_a"], battle["answer_b"]) if a > b else (battle["answer_b"], battle["answer_a"])
        rows.append({"prompt": battle["prompt"], "chosen": chosen, "rejected": rejected,
                     "chosen_variant": battle["variant_a"] if a > b else battle["variant_b"],
                     "rejected_variant": battle["variant_b"] if a > b else battle["variant_a"], "battle": battle["id"],
                     "source": "battle"})
    return rows
