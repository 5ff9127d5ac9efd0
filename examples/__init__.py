"""The sample project, Larkspur Kitchen: a handbook, a ticket-triage dataset, questions and facts."""

from pathlib import Path

SAMPLE = Path(__file__).parent / "larkspur"

# A new ticket (not in the training or held-out sets) for the blind compare of base and adapter.
TICKET = ("Triage this support ticket as JSON.\n\nHi, the Bramble toaster sparked when I plugged it in "
          "and now smells of burning. Order LK-204518.")

# The sample's LoRA: one epoch over the 1,000 tickets (900 after validation) at 8 per step, 113
# optimizer steps, validated at steps 57 and 113. On a 2-core CPU, 8 per step trains about 1.2x
# the tokens/s of 4 (310 against 261) and still reaches the schema on every held-out ticket; each
# validation pass over the 100 held-back tickets costs about 10 s, so two stand in for the
# default five. A team's own small set keeps the defaults (4 per step, three epochs), which
# need the extra steps.
TRAIN_SETTINGS = {"epochs": 1, "batch_size": 8, "eval_steps": 57}
