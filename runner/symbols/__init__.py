"""Addresses to names, in user space: kernel frames from the running kernel's symbols
(/proc/kallsyms), user frames through the process's mappings (/proc/PID/maps) and the ELF
symbol tables of the files mapped (pyelftools), with their separate debug files found by
build-id. Every file read here may be a stranger's: parsing is bounded and any failure
leaves the frame as its address, never dropped and never a traceback."""
