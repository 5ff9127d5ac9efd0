"""`ladder tiny-model DIR`: a tiny LLaMA-architecture causal LM built fully offline.

Random weights, a byte-level BPE tokenizer trained locally with `tokenizers`, and a ChatML-style
chat template with `{% generation %}` markers (so assistant-only loss works). Tests and demos
use it wherever a real model would be downloaded; it builds in a few seconds on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# ChatML-style turns; the assistant's content sits inside {% generation %} so
# `return_assistant_tokens_mask=True` and trl's assistant_only_loss can find it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|im_end|>", "<|im_start|>", "<|unk|>"]

# A few paragraphs in the project's own words: enough for BPE merges of common English.
_CORPUS = """
Ladder helps a team decide how to customise a language model. Start with prompting, measure it
against a quality bar, and climb only when the rung below cannot meet it. Retrieval answers
questions about documents that change; fine-tuning teaches a format, a style or a reasoning
pattern. A LoRA adapter trains a small low-rank update while the base model stays frozen, and a
QLoRA job loads the base model in four-bit precision to save memory. Every claim needs an
evaluation set: without one, nobody can tell whether the adapter helped.
The support team answers tickets about billing, refunds, shipping and passwords. The policy says
refunds are allowed within thirty days. Customers ask where their order is, how to reset a
password, and whether the product works offline. Please answer in JSON with the fields intent,
priority and reply. The assistant is polite, brief and cites its sources as [1] and [2].
What is the capital of France? Paris. What is two plus two? Four. Translate hello to Spanish: hola.
"""


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of the tiny model; small enough to train in seconds on two CPU cores."""

    vocab_size: int = 512  # tokens; the BPE trainer may stop short on the small corpus
    hidden_size: int = 64  # width; every linear layer is hidden x hidden or hidden x 4*hidden
    intermediate_size: int = 128  # MLP width
    num_hidden_layers: int = 2  # depth
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # grouped-query attention, like current Llama/Qwen models
    max_position_embeddings: int = 512  # longest sequence in tokens
    seed: int = 0


def build_tokenizer(vocab_size: int):
    """Return a `PreTrainedTokenizerFast` trained on the built-in corpus (byte-level BPE)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([line for line in _CORPUS.splitlines() if line.strip()] * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|bos|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def build_tiny_model(directory: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Build the tiny model and tokenizer into `directory` and return it.

    The result reloads with `AutoModelForCausalLM.from_pretrained(directory)` and
    `AutoTokenizer.from_pretrained(directory)`. Raises OSError if `directory` is not writable.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec.vocab_size)
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=32,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "ladder-tiny.json").write_text(json.dumps(asdict(spec), indent=2, sort_keys=True))
    return directory
