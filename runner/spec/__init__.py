"""Stages 1-2: YAML bytes -> a located document, checked against schema.json."""
