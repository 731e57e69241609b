"""Provider adapters: pure translation between the canonical form and a provider's API."""
