"""Stage 6: the run: decode records, format, count, dump maps, handle signals."""
