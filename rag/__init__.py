"""Documents to chunks to embeddings to Chroma: ingest, retrieval, answers and evaluation."""
