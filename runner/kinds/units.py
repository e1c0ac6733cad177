"""Units an aggregation records in, and the constants every stage shares about them."""

from __future__ import annotations

# What one recorded unit is in the base unit Prometheus wants (seconds, bytes).
UNIT_SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "bytes": 1.0}
# Nanoseconds per time unit: an `elapsed` value (ktime, ns) is divided by it.
NS_PER = {"ns": 1, "us": 1000, "ms": 1_000_000, "s": 1_000_000_000}
# A histogram's map entry whose bucket is this holds the sum of the values, not a count.
SUM_BUCKET = (1 << 64) - 1
# Histogram `le` bounds exported for time units stop at this many seconds: beyond, the
# buckets of a log2 layout (up to 2**62 units) only make the exposition long.
MAX_LE_SECONDS = 100.0
