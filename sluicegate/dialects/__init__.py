"""Client dialects: the APIs clients speak, parsed into the canonical form."""
