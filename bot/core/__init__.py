"""Core plumbing every capability (and rag/) may use: settings, the one error type, the redacting
log, the SQLite store and its named migrations. It imports nothing from the chat."""
