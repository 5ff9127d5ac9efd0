"""General questions for the forgetting check: everyday facts a small instruct model knows, so a
drop after training shows the adapter has overwritten what the base could do (seed 004: more
than 5% below base means overtraining)."""

from __future__ import annotations

# (question, reference)
GENERAL: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("How many days are in a week?", "seven"),
    ("How many legs does a spider have?", "eight"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("Which planet do we live on?", "Earth"),
    ("What gas do plants take in from the air?", "carbon dioxide"),
    ("What is frozen water called?", "ice"),
    ("What do bees make?", "honey"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is the opposite of hot?", "cold"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("What is the chemical symbol for water?", "H2O"),
    ("Which ocean is the largest?", "Pacific"),
    ("What is the tallest mountain in the world?", "Mount Everest"),
    ("How many continents are there?", "seven"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("What is the fastest land animal?", "cheetah"),
    ("Which star is closest to the Earth?", "the Sun"),
    ("What is the longest river in Africa?", "Nile"),
]
