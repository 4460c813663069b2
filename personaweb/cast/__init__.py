"""Characters in the UI: list, create, edit, duplicate, delete, import and export cards.

The sheets themselves (validation, Character Cards) live in `personaweb.characters`; this app
is the Django shell around them, storing sheets in `web.Character` rows.
"""
