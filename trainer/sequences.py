"""How an example becomes one training sequence: token ids and the answer they end with.

The chat template is applied to the whole conversation and to the prompt alone; the tokens past
their shared prefix are the answer, end-of-turn token included, so the model learns to stop.
When a sequence is longer than `max_length`, the prompt is cut from the left: the answer is
what the loss is computed on, so it is never cut. An answer that does not fit on its own (with
at least one prompt token before it) leaves nothing to learn from, and the example is dropped.
The recipe trains on exactly what the dataset doctor counts here.
"""

from __future__ import annotations


def tokenize_example(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], int]:
    """Return (token ids of the whole conversation, index where the final answer starts)."""
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    shared = 0
    while shared < min(len(full), len(prompt)) and full[shared] == prompt[shared]:
        shared += 1
    return full, shared


def fit_to_length(ids: list[int], answer_start: int, max_length: int) -> tuple[list[int], int] | None:
    """Return (ids, answer start) within `max_length`, the prompt cut from the left, or None when
    the answer alone does not fit."""
    if len(ids) <= max_length:
        return ids, answer_start
    answer = len(ids) - answer_start
    if answer >= max_length:  # no room for even one prompt token: nothing sensible to learn
        return None
    keep = max_length - answer  # prompt tokens that fit, the last ones (nearest the answer)
    return ids[answer_start - keep:], keep
