"""Every kind of thing a spec names (built-ins, ...), each found through one table."""
