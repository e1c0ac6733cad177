"""Stage 4: the only code that spells C or Python source (Jinja templates)."""
