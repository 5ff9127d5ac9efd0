"""Prompt and interview data (YAML), shipped with the package; no code lives here."""
