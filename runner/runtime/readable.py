"""Event fields decoded for people (an event output's `decode:`), through the decoders
registry: JSON keeps the raw number beside its name where both matter (errno -2 and
ENOENT), text formats use FIELD_name or the replaced value."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Tuple

from runner.kinds.decoders import Decoder, Decoders
from runner.runtime.decode import RecordDecoder


def readable(dec: RecordDecoder, decodes: Tuple[Tuple[str, str], ...],
             decoders: Decoders) -> RecordDecoder:
    """dec, whose records come out with the declared fields decoded."""
    if not decodes:
        return dec
    chosen = tuple((field, decoders.get(name)) for field, name in decodes)
    return dataclasses.replace(dec, fields=_decoding(dec.fields, chosen))


def _decoding(fields: Callable[[Any], Dict[str, Any]],
              chosen: Tuple[Tuple[str, Decoder], ...]) -> Callable[[Any], Dict[str, Any]]:
    def decoded(record: Any) -> Dict[str, Any]:
        out = fields(record)
        for field, decoder in chosen:
            raw = out[field]
            if isinstance(raw, list):  # a u8[N] field: the address bytes
                raw = bytes(raw)
            out.update(decoder.json_fields(field, raw))
        return out

    return decoded
