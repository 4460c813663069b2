"""The JSON API: the same actions as the pages, over HTTP, with per-user tokens."""
