"""Stage 5: the only code that imports bcc: compile, load, attach, read buffers and maps."""
