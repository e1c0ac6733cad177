"""The frozen dataclasses between stages: the spec's meaning and the type table. No C text."""
