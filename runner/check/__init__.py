"""Stage 3: the meaning checker, document -> model."""
