"""Stage 7: where records go: text or JSON lines."""
