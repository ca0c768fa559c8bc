"""The JSON API under /api/v1, authenticated with per-client API keys."""
