"""Proving the decision: variants and blind battles, the leaderboard, held-out evaluation, and
their chat side."""
