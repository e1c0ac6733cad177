"""Stage 7: where records go. One module per format (text.py, json.py), found by name in
registry.py; escape.py keeps text output to one line per record; stdout.py keeps the
record stream private and turns write failures into errors."""
