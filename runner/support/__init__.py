"""Helpers with no stage of their own: the compile cache, package files, hints, syscalls."""
