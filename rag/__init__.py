"""Documents to chunks to embeddings to Chroma: ingest, retrieval, answers and evaluation."""

from rag.answer import answer, build_messages
from rag.evaluation import draft_questions, evaluate, load_eval_questions
from rag.index import Hit, IngestReport, KnowledgeBase, expand_paths

__all__ = [
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "answer",
    "build_messages",
    "draft_questions",
    "evaluate",
    "expand_paths",
    "load_eval_questions",
]
