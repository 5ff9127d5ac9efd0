"""Support tickets and their triage records: the sample's fine-tuning task.

A ticket is a customer's message; its record is one JSON object with the ticket's `category`,
`priority` and `order_id` (or null). The rules live in the templates: safety reports are urgent;
a parcel long overdue, a refund that never came or a double charge is high; a plain request is
normal; a question is low. The base model can write JSON but not this shape or these rules,
which is what makes it a task for an adapter rather than a prompt.

Every ticket is built from the templates below with a seeded random generator, so the same seed
always gives the same file.
"""

from __future__ import annotations

import json
import random

INSTRUCTION = "Triage this support ticket as JSON."
CATEGORIES = ("refund", "delivery", "warranty", "billing", "account", "safety")
PRIORITIES = ("low", "normal", "high", "urgent")

# (category, priority) -> message bodies. {product}, {days}, {amount} are filled in.
TEMPLATES: dict[tuple[str, str], list[str]] = {
    ("refund", "low"): [
        "Can I return a {product} if I just changed my mind?",
        "What is your returns policy for a {product} bought as a present?",
        "Do I need the original box to send back a {product}?",
    ],
    ("refund", "normal"): [
        "I'd like to return my {product}, it is not what I expected.",
        "Please send me a return label for the {product}, I no longer need it.",
        "The {product} is too big for my kitchen and I want my money back.",
        "I want to send the {product} back unused. How do I start the return?",
    ],
    ("refund", "high"): [
        "I returned the {product} {days} days ago and still have no refund.",
        "You confirmed my return weeks ago but the money for the {product} never arrived.",
        "Still waiting on the refund for the {product}, it has been {days} days. This is unacceptable.",
    ],
    ("delivery", "low"): [
        "Do you deliver to Ireland, and how long does it take?",
        "Which courier do you use for a {product}?",
        "Is there a way to get my {product} delivered on a Saturday?",
    ],
    ("delivery", "normal"): [
        "Can I change the delivery address for my {product}?",
        "The tracking link for my {product} does not open. Can you resend it?",
        "I will be away on Thursday, can the {product} be left with a neighbour?",
    ],
    ("delivery", "high"): [
        "My {product} was due {days} days ago and has not arrived.",
        "The tracking says delivered but there is no {product} here.",
        "I paid for express delivery and the {product} is {days} days late.",
        "Half of my order arrived, the {product} is missing.",
    ],
    ("warranty", "low"): [
        "How long is the warranty on the {product}?",
        "Does the warranty on a {product} cover limescale?",
        "Where is the serial number on the {product}?",
    ],
    ("warranty", "normal"): [
        "My {product} stopped working after {days} days. Can it be repaired?",
        "The button on the {product} is stuck. I think it is a fault.",
        "The {product} no longer heats up properly.",
        "The lid of the {product} will not close any more.",
    ],
    ("warranty", "high"): [
        "The {product} was dead on arrival, it does not switch on at all.",
        "This is the second {product} that has broken within a week. I need a working one.",
        "Your repair sent back my {product} still broken.",
    ],
    ("billing", "low"): [
        "Can I pay for a {product} with Klarna?",
        "Could you send me a VAT invoice for the {product}?",
        "Do you accept American Express?",
    ],
    ("billing", "normal"): [
        "My discount code did not apply to the {product}.",
        "The price of the {product} dropped the day after I bought it, can you match it?",
        "I was charged for express delivery but chose standard for my {product}.",
    ],
    ("billing", "high"): [
        "I was charged twice for the {product}, {amount} each time.",
        "There is a payment of {amount} on my card I never made.",
        "You took {amount} for the {product} but the order was cancelled.",
    ],
    ("account", "low"): [
        "How do I change the email on my account?",
        "Can I see my loyalty points somewhere?",
        "How long do you keep my order history?",
    ],
    ("account", "normal"): [
        "My account is locked after too many password attempts.",
        "The password reset link has expired, please send another.",
        "Please delete my account and my data.",
    ],
    ("account", "high"): [
        "Someone else logged into my account and ordered a {product}.",
        "I got an email about a password change I did not make.",
    ],
    ("safety", "urgent"): [
        "The {product} sparked when I plugged it in and now smells of burning.",
        "Smoke came out of the {product} this morning. Is it safe?",
        "The {product} gave me an electric shock when I touched it.",
        "The cable of the {product} melted while it was on.",
    ],
}

PRODUCTS = ("Aster kettle", "temperature-control kettle", "Bramble toaster", "4-slice toaster",
            "Corvid coffee machine", "Wren milk frother")
GREETINGS = ("", "Hi,", "Hello,", "Hi there,", "Good morning,", "Dear Larkspur,")
SIGN_OFFS = ("", "Thanks", "Thanks, Sam", "Regards, Priya", "Cheers", "Thank you, J. Okafor")
ORDER_PHRASES = ("My order number is {id}.", "Order {id}.", "Ref {id}.", "It was order {id}.",
                 "Order no: {id}")
ORDER_SHARE = 0.7  # of tickets mention their order; the rest must give order_id null


def order_id(rng: random.Random) -> str:
    """Return an order id in the shop's format, LK- and six digits."""
    return f"LK-{rng.randrange(100000, 1000000)}"


def ticket(rng: random.Random) -> tuple[str, dict]:
    """Return one ticket and its triage record."""
    category, priority = rng.choice(sorted(TEMPLATES))
    body = rng.choice(TEMPLATES[(category, priority)]).format(
        product=rng.choice(PRODUCTS), days=rng.randrange(4, 22), amount=f"£{rng.randrange(25, 160)}")
    number = order_id(rng) if rng.random() < ORDER_SHARE else None
    parts = [body]
    if number:
        phrase = rng.choice(ORDER_PHRASES).format(id=number)
        parts.insert(rng.randrange(2), phrase)
    greeting, sign_off = rng.choice(GREETINGS), rng.choice(SIGN_OFFS)
    text = " ".join(p for p in (greeting, *parts, sign_off) if p)
    return text, {"category": category, "priority": priority, "order_id": number}


def examples(count: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    """Return `count` distinct chat examples (ticket in, record out), none of them in `exclude`."""
    rng = random.Random(seed)
    seen, rows = set(exclude), []
    while len(rows) < count:
        text, record = ticket(rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"messages": [
            {"role": "user", "content": f"{INSTRUCTION}\n\n{text}"},
            {"role": "assistant", "content": json.dumps(record)},
        ]})
    return rows


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Larkspur Kitchen ticket triage",
    "type": "object",
    "properties": {
        "category": {"enum": list(CATEGORIES)},
        "priority": {"enum": list(PRIORITIES)},
        "order_id": {"anyOf": [{"type": "string", "pattern": "^LK-[0-9]{6}$"}, {"type": "null"}]},
    },
    "required": ["category", "priority", "order_id"],
    "additionalProperties": False,
}
