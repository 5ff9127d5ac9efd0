"""The model host: one base model in memory plus hot-loaded LoRA adapters, and generation.

The base model is loaded once; adapters from the registry are loaded with peft's
`load_adapter`, switched layer by layer (as `set_adapter` does) and capped by an LRU of
resident adapters. A batch may mix adapters (peft's mixed-adapter `generate`), and streaming
always joins its generation thread before the model lock is released.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.errors import LadderError

logger = logging.getLogger("ladder.serving")
BASE = "base"
PEFT_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
AUTOCAST_ROWS = 8  # the smallest batch that bf16 autocast speeds up on a CPU (see ModelHost._autocast)
MERGE_ROWS = AUTOCAST_ROWS  # merging pays in bf16 batches only: a batch that small of one adapter (see _merge)
PREFIX_TOKENS = 64  # a batch whose prompts all start with this many equal tokens computes them once (_prefix_cache)


def shared_prefix(prompts: list[list[int]]) -> int:
    """Return how many leading tokens all `prompts` share, leaving every prompt at least one
    token of its own (generation needs a new token to start from)."""
    shortest = min(len(p) for p in prompts) - 1
    first = prompts[0]
    length = 0
    while length < shortest and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


class UnknownModel(LadderError):
    """The requested model is neither the base nor a registered adapter (HTTP 404)."""


@dataclass(frozen=True)
class AdapterRef:
    """One registered adapter: its registry id, canonical name (PROJECT/NAME), files and base."""

    name: str
    path: Path
    base_revision: str | None
    id: int = 0

    @property
    def key(self) -> str:
        """The peft adapter name: the registry id and the path, so a deleted or re-trained
        adapter (a new id, a new folder) is never served from an old load."""
        digest = hashlib.sha1(str(self.path).encode()).hexdigest()[:8]
        return f"adapter_{self.id}_{digest}"


@dataclass
class GenRequest:
    """One chat completion to generate."""

    model: str
    messages: list[dict[str, str]]
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    min_tokens: int = 0  # vLLM's extension: generate at least this many tokens before EOS may end it
    repetition_penalty: float = 1.0  # vLLM's extension: above 1 discourages any token already seen, prompt included
    frequency_penalty: float = 0.0  # OpenAI's: minus this per earlier use of a token in the answer (not the prompt)
    presence_penalty: float = 0.0  # OpenAI's: minus this once a token is in the answer
    include_usage: bool = False  # stream_options.include_usage: a last chunk carries the token counts

    @property
    def sampling(self) -> tuple:
        """Requests with equal sampling settings can share one generate call."""
        return (self.temperature > 0, round(self.temperature, 4), round(self.top_p, 4), self.seed, self.min_tokens,
                round(self.repetition_penalty, 4), round(self.frequency_penalty, 4), round(self.presence_penalty, 4))

    def sampling_kwargs(self, prompt_width: int) -> dict[str, Any]:
        """Return generate()'s sampling arguments for this request, whose prompts are
        `prompt_width` tokens wide (left-padded): the penalties count only the answer's tokens."""
        kwargs: dict[str, Any] = {"do_sample": self.temperature > 0, "repetition_penalty": self.repetition_penalty}
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        if self.frequency_penalty or self.presence_penalty:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(
                [AnswerPenalty(prompt_width, self.frequency_penalty, self.presence_penalty)])
        return kwargs


@dataclass
class GenResult:
    """Generated text with its token counts and why it stopped."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class ModelHost:
    """One base model in memory plus up to `max_adapters` resident adapters."""

    def __init__(self, base_model: str, registry: Callable[[str], AdapterRef | None], max_adapters: int = 4,
                 names: Callable[[], list[str]] | None = None, precision: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainer.hub import resolve_base_model

        self.base_id = base_model
        self.base_dir, self.revision = resolve_base_model(base_model)
        self.registry = registry
        self.names = names or (lambda: [])
        self.loaded: dict[str, AdapterRef] = {}  # adapters registered at runtime (vLLM's load_lora_adapter)
        self.max_adapters = max(1, max_adapters)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        # On a CPU the weights stay fp32 (adapters load and merge exactly) and bf16 autocast runs
        # the matmuls where the CPU has bf16 instructions.
        self.autocast = self.device == "cpu" and generation_bf16(precision)
        self.precision = "bf16" if dtype == torch.bfloat16 or self.autocast else "fp32"
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.base_dir, dtype=dtype, local_files_only=True).to(self.device)
        self.model.eval()
        self.resident: OrderedDict[str, AdapterRef] = OrderedDict()
        self.merged: str | None = None  # the adapter whose merged weights are in place (see _merge)
        self._originals: list[tuple[Any, Any, Any]] = []  # (lora layer, base layer, its own weight) while merged
        self.lock = threading.RLock()  # generation and adapter changes never interleave
        self._adapter_layers: list[Any] | None = None  # peft's adapter layers, found once per load or delete

    # -- adapters -------------------------------------------------------------------------

    def ensure(self, model: str) -> str:
        """Make `model` resident (loading, evicting the least recently used); return the peft name.

        The registry is asked on every call, so `NAME` and `PROJECT/NAME` share one load and a
        deleted or re-trained adapter is never answered from memory; names loaded at runtime
        (`load_adapter`) come second, and go once their folder is gone. Raises UnknownModel for a
        name the registry does not know, LadderError for an adapter trained on another base model.
        """
        if model == BASE:
            return PEFT_BASE
        ref = self.registry(model) or self.loaded.get(model)
        if ref is not None and ref.id == 0 and not (ref.path / "adapter_config.json").exists():
            self.loaded.pop(model, None)  # loaded at runtime, deleted since: never serve it from memory
            with self.lock:
                if self.resident.pop(ref.key, None) is not None:
                    self._unmerge()
                    self.model.delete_adapter(ref.key)
                    self._adapter_layers = None
            ref = None
        if ref is None:
            raise UnknownModel(f"model {model!r} is not served here: it is neither 'base' nor a registered adapter; "
                               "`ladder adapters list --project P` shows the adapters")
        if ref.base_revision and ref.base_revision != self.revision:
            raise LadderError(f"adapter {model!r} was trained on another base model ({ref.base_revision}); this "
                              f"server runs {self.base_id} ({self.revision})")
        with self.lock:
            if ref.key in self.resident:
                self.resident.move_to_end(ref.key)
                return ref.key
            from peft import PeftModel

            self._unmerge()  # adapters load and unload on the base's own weights
            stale = [key for key, old in self.resident.items() if old.name == ref.name]  # an older generation
            while stale or len(self.resident) >= self.max_adapters:
                evicted = stale.pop() if stale else next(iter(self.resident))
                del self.resident[evicted]
                self.model.delete_adapter(evicted)
            self._adapter_layers = None
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(ref.path), adapter_name=ref.key)
                if self.model.active_adapter not in self.model.peft_config:  # the active one was evicted
                    self._switch(ref.key)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(ref.path), adapter_name=ref.key)
                self.model.eval()
            self.resident[ref.key] = ref
            return ref.key

    def activate(self, model: str) -> None:
        """Switch the active adapter (the fast path when it is already resident)."""
        with self.lock:
            key = self.ensure(model)
            self._unmerge()
            if key != PEFT_BASE:
                self._switch(key)

    def _switch(self, key: str) -> None:
        """Make the resident adapter `key` the active one, as peft's `set_adapter` does for
        inference (each adapter layer's active adapter), without its walk over every module and
        its requires_grad bookkeeping: about 40 ms on SmolLM2's 210 LoRA layers, now well under
        1 ms. An adapter with modules_to_save (whole copied layers) goes through peft."""
        if self.model.active_adapter == key:
            return
        if getattr(self.model.peft_config[key], "modules_to_save", None):
            self.model.set_adapter(key)
            return
        if self._adapter_layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            self._adapter_layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        for layer in self._adapter_layers:
            layer._active_adapter = [key]
        self.model.base_model.active_adapter = key  # what peft's wrapper and its tuner each record
        self.model.active_adapter = key

    def models(self) -> list[str]:
        """Return the ids this server answers to."""
        return [BASE, *sorted(set(self.names()) | set(self.loaded))]

    def load_adapter(self, name: str, path: str) -> None:
        """Serve the adapter in folder `path` as `name` from now on (vLLM's `load_lora_adapter`),
        loading it at once. Raises LadderError for a folder that holds no adapter, or a name
        loaded this way already (as vLLM does: unload it first)."""
        if name in self.loaded:
            raise LadderError(f"the LoRA adapter {name!r} has already been loaded; unload it first")
        folder = Path(path)
        if not (folder / "adapter_config.json").exists():
            raise LadderError(f"{path} holds no LoRA adapter (no adapter_config.json); give the adapter's folder")
        summary = folder.parent / "ladder.json"
        revision = json.loads(summary.read_text()).get("base_model", {}).get("revision") if summary.exists() else None
        self.loaded[name] = AdapterRef(name, folder, revision, 0)
        try:
            self.ensure(name)
        except LadderError:
            del self.loaded[name]
            raise

    def unload_adapter(self, name: str) -> None:
        """Stop serving a runtime-registered adapter (vLLM's `unload_lora_adapter`); raise
        UnknownModel when it was not loaded that way."""
        ref = self.loaded.pop(name, None)
        if ref is None:
            raise UnknownModel(f"adapter {name!r} was not loaded with load_lora_adapter")
        with self.lock:
            if ref.key in self.resident:
                del self.resident[ref.key]
                self._unmerge()
                self.model.delete_adapter(ref.key)
                self._adapter_layers = None

    # -- generation -----------------------------------------------------------------------

    def _autocast(self, rows: int):
        """bf16 autocast for a batch of `rows` on a CPU that is fast at it (see `precision`), else
        nothing. Below 8 rows bf16 barely pays or loses (SmolLM2, tokens/s in fp32 and in bf16 with
        the weights cast once per call: 1 row 21 and 16, 4 rows 45 and 57, 8 rows 62 and 68, 16
        rows 80 and 158), and fp32 answers never depend on which requests share a batch."""
        import torch

        enabled = self._autocast_on(rows)
        if enabled:
            self._cache_casts()
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)

    def _has_adapters(self) -> bool:
        """True once an adapter has been loaded (the model is then peft's wrapper). Base-only
        work never imports peft, which costs about 2 s of a command's start."""
        peft = sys.modules.get("peft")
        return peft is not None and isinstance(self.model, peft.PeftModel)

    def _autocast_on(self, rows: int) -> bool:
        return self.autocast and rows >= AUTOCAST_ROWS

    def _prefix_cache(self, prefix: list[int], rows: int):
        """Return the key/value cache of `prefix` (the tokens every prompt of a batch starts
        with), computed once and repeated for `rows` rows.

        RAG prompts share their system prompt and worked examples (about 220 of their 300
        tokens), and on a CPU prefill is most of a batch's time: 32 RAG prompts of 40 tokens take
        8.4 s with the prefix computed once and 15.1 s without (the rag variant's held-out eval
        of 120 tickets: 74 s against 87). Only bf16 batches share it (their
        answers already depend on the batch's shape); the values match the unshared ones to
        rounding (fp32 logits within 4e-5)."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=torch.tensor([prefix], device=self.device), cache=cache, use_cache=True)
        cache.batch_repeat_interleave(rows)
        return cache

    def _prefix_batch(self, prompts: list[list[int]], shared: int) -> dict[str, Any]:
        """Return input ids and attention mask laid out as [shared prefix][padding][the rest], so
        the prefix sits at the same positions in every row and its cache serves them all
        (position ids follow the mask, so every token keeps its unpadded position)."""
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            rest = prompt[shared:]
            ids[row, :shared] = torch.tensor(prompt[:shared])
            ids[row, width - len(rest):] = torch.tensor(rest)
            mask[row, :shared] = 1
            mask[row, width - len(rest):] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def _cache_casts(self) -> None:
        """Let autocast cast each weight to bf16 once per generate call instead of once per token.

        Autocast caches the casts of leaf tensors that require grad only, and peft freezes the
        base (and every inactive adapter). Generation runs under `no_grad`, so the flag costs no
        autograd work and changes no output; on SmolLM2, 32 rows of 32 tokens take 5.2 s instead
        of 8.5 (base) and 7.7 instead of 10.4 (an adapter)."""
        for parameter in self.model.parameters():
            if not parameter.requires_grad:
                parameter.requires_grad_(True)

    def _merge(self, key: str) -> None:
        """Serve adapter `key` from merged weights (W + scale * B @ A) for a big batch of it alone.

        A merged adapter costs nothing per token: on SmolLM2 in bf16, 32 rows of 32 tokens take
        4.7 s merged and 7.7 s through the adapter's own layers. The merged weights are new
        tensors put in the base layers' place; the base's own stay untouched aside and come back
        as they were (subtracting the product again would leave fp32 rounding behind, which moves
        thousands of weights to another bf16 value and changes later base answers). Merging takes
        about half a second, so it lasts until something else runs. Only plain LoRA on linear
        layers merges, only on a CPU in bf16 (on a GPU the adapter's own layers are cheap), and
        only batches of MERGE_ROWS or more (never a chat answer). Sums round differently merged,
        so about 1 greedy token in 100 may differ from the unmerged answer."""
        import torch
        from peft.tuners.lora.layer import Linear, LoraLayer

        if self.merged == key or not self.autocast:
            return
        self._unmerge()
        layers = [m for m in self.model.modules()
                  if isinstance(m, LoraLayer) and (key in m.lora_A or key in m.lora_embedding_A)]
        if not layers or any(not isinstance(m, Linear) or key in m.lora_variant or m.lora_bias.get(key)
                             or getattr(m, "fan_in_fan_out", False) for m in layers):
            return  # DoRA, embeddings, biases: served through the adapter's layers
        self._switch(key)
        with torch.no_grad():
            for layer in layers:
                base = layer.get_base_layer()
                original = base.weight
                base.weight = torch.nn.Parameter(original + layer.get_delta_weight(key).to(original.dtype))
                layer.merged_adapters.append(key)  # peft's forward then runs the base layer alone
                self._originals.append((layer, base, original))
        self.merged = key

    def _unmerge(self) -> None:
        """Put the base's own weights back if an adapter is merged (see _merge)."""
        for layer, base, original in self._originals:
            base.weight = original
            layer.merged_adapters.remove(self.merged)
        self._originals.clear()
        self.merged = None

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Generate every request in one batched call (requests must share sampling settings)."""
        import torch

        distinct = {r.model for r in requests} - {BASE}
        if len(distinct) > self.max_adapters:  # more adapters than may be resident: split the batch
            half = len(requests) // 2
            return self.generate(requests[:half]) + self.generate(requests[half:])
        with self.lock:
            keys = [self.ensure(r.model) for r in requests]
            prompts = [self._prompt_ids(r.messages) for r in requests]
            batch = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
            first = requests[0]
            kwargs: dict[str, Any] = {
                "max_new_tokens": max(r.max_tokens for r in requests),
                "min_new_tokens": first.min_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
                **first.sampling_kwargs(batch["input_ids"].shape[1]),
            }
            if first.seed is not None:
                torch.manual_seed(first.seed)
            single = len(set(keys)) == 1 and keys[0] != PEFT_BASE
            if single and len(requests) >= MERGE_ROWS:
                self._merge(keys[0])
            else:
                self._unmerge()
            peft = self._has_adapters()
            everyone_base = all(k == PEFT_BASE for k in keys)
            with torch.no_grad(), self._autocast(len(requests)), (
                    self.model.disable_adapter() if peft and everyone_base else nullcontext()):
                if peft and single and self.merged is None:
                    self._switch(keys[0])  # one adapter: no per-row routing (about 1.7x faster)
                shared = shared_prefix(prompts) if (single or everyone_base) and self._autocast_on(len(requests)) else 0
                if shared >= PREFIX_TOKENS:
                    batch = self._prefix_batch(prompts, shared)
                    kwargs["cache"] = self._prefix_cache(prompts[0][:shared], len(requests))
                if peft and not (single or everyone_base):
                    output = self.model.generate(**batch, adapter_names=keys, **kwargs)
                else:
                    output = self.model.generate(**batch, **kwargs)
        results = []
        width = batch["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        for request, prompt, row in zip(requests, prompts, output, strict=True):
            new = row[width:].tolist()
            if eos in new:
                new = new[: new.index(eos)]
                reason = "stop"
            else:
                reason = "length"
            new = [t for t in new if t != self.tokenizer.pad_token_id][: request.max_tokens]
            if len(new) == request.max_tokens and reason != "stop":
                reason = "length"
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            for stop in request.stop:
                if stop and stop in text:
                    text, reason = text[: text.index(stop)], "stop"
            results.append(GenResult(text, len(prompt), len(new), reason))
        return results

    def stream(self, request: GenRequest, outcome: dict[str, Any]) -> Iterator[str]:
        """Yield the answer's text as it is generated; fill `outcome` with the token counts and
        the finish reason once it ends.

        The lock is held from start to end, and the generation thread is always joined before it
        is released: closing the iterator early (a client that went away) stops generation at
        the next token. Raises GenerationFailed when generation fails part-way.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        class CountingStreamer(TextIteratorStreamer):
            """Streams text and counts the generated tokens, keeping the last one."""

            generated = 0
            last_token: int | None = None

            def put(self, value) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    tokens = value.reshape(-1).tolist()
                    self.generated += len(tokens)
                    self.last_token = tokens[-1] if tokens else self.last_token
                super().put(value)

        stop = threading.Event()
        failure: list[BaseException] = []
        with self.lock:
            self.activate(request.model)
            prompt = self._prompt_ids(request.messages)
            streamer = CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            kwargs = {"input_ids": torch.tensor([prompt], device=self.device), "max_new_tokens": request.max_tokens,
                      "min_new_tokens": request.min_tokens, "streamer": streamer,
                      "pad_token_id": self.tokenizer.pad_token_id, **request.sampling_kwargs(len(prompt)),
                      "stopping_criteria": StoppingCriteriaList([Stop()])}
            if request.seed is not None:
                torch.manual_seed(request.seed)

            def run() -> None:
                try:
                    with torch.no_grad(), self._autocast(1):
                        if request.model == BASE and self._has_adapters():
                            with self.model.disable_adapter():
                                self.model.generate(**kwargs)
                        else:
                            self.model.generate(**kwargs)
                except BaseException as exc:  # re-raised in the caller's thread below
                    failure.append(exc)
                finally:
                    streamer.end()  # the reader always gets its end, even when generate failed

            worker = threading.Thread(target=run, daemon=True, name="ladder-generate")
            worker.start()
            stopped_by_string = False
            try:
                for piece, stopped_by_string in _until_stop(streamer, request.stop):
                    if piece:
                        yield piece
                    if stopped_by_string:
                        break
            finally:
                stop.set()  # a no-op when generation ended by itself
                worker.join()
        if failure:
            raise GenerationFailed(f"generation failed part-way ({type(failure[0]).__name__})") from failure[0]
        eos = streamer.last_token == self.tokenizer.eos_token_id
        outcome.update(prompt_tokens=len(prompt), completion_tokens=streamer.generated,
                       finish_reason="length" if not (eos or stopped_by_string) and streamer.generated >= request.max_tokens
                       else "stop")


def generation_bf16(precision: str) -> bool:
    """Return whether CPU generation runs in bf16 autocast: asked for, or (auto) where the CPU
    has bf16 instructions."""
    if precision not in {"auto", "bf16", "fp32"}:
        raise LadderError(f"unknown generation precision {precision!r}; use auto, bf16 or fp32")
    if precision != "auto":
        return precision == "bf16"
    from trainer.device import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


class AnswerPenalty:
    """OpenAI's frequency and presence penalties as a logits processor: each token's logit drops
    by `frequency` per time it already occurs in the answer, and by `presence` once it does.
    Prompt tokens never count, so copying from the prompt (an order id, a name) stays free."""

    def __init__(self, prompt_width: int, frequency: float, presence: float):
        self.prompt_width, self.frequency, self.presence = prompt_width, frequency, presence

    def __call__(self, input_ids, scores):
        import torch

        answer = input_ids[:, self.prompt_width:]
        if answer.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, answer, torch.ones_like(answer, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class GenerationFailed(LadderError):
    """Generation failed after it started; the details are in the server log."""


def _until_stop(pieces: Iterator[str], stops: list[str]) -> Iterator[tuple[str, bool]]:
    """Yield (text, stopped) from streamed pieces, ending at the first stop string.

    The last len(longest stop) - 1 characters are held back until they cannot begin a stop
    string, so a stop split across pieces is still caught and never shown.
    """
    stops = [s for s in stops if s]
    if not stops:
        for piece in pieces:
            yield piece, False
        return
    hold = max(len(s) for s in stops) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        hits = [buffer.index(s) for s in stops if s in buffer]
        if hits:
            yield buffer[: min(hits)], True
            return
        if len(buffer) > hold:
            cut = len(buffer) - hold
            yield buffer[:cut], False
            buffer = buffer[cut:]
    yield buffer, False


