"""API tokens: making, checking and revoking them.

The rules:
- A token is `pw_` and 43 URL-safe characters from `secrets` (256 random bits). It is shown
  once, when it is made; the database keeps its SHA-256 and its first characters (to tell
  tokens apart on the page). A fast hash is the right one here: the token is random, not a
  password a person chose, so there is nothing to guess and a slow hash would only slow every
  request. Looking a token up by its digest also means no comparison of secrets in Python.
- A token acts as its owner, with the owner's rights and nothing more; revoking it deletes
  the row, and the token stops working at once.
- `last_used_at` is written at most once a minute per token, so scripts don't turn every read
  into a write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from personaweb.api.models import ApiToken

PREFIX = "pw_"
SHOWN = 10
"""Characters of the token kept to tell it apart (the prefix and 7 more)."""
MAX_NAME = 100
MAX_TOKENS = 50
"""Most tokens a person may hold at once."""
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    """A token just made: the row, and the secret to show once."""

    row: ApiToken
    secret: str


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create(owner: User, name: str) -> NewToken:
    """A new token of `owner`'s (ValueError with a sentence when it cannot be made)."""
    name = " ".join(name.split())[:MAX_NAME] or "token"
    if ApiToken.objects.filter(owner=owner).count() >= MAX_TOKENS:
        raise ValueError(f"you have {MAX_TOKENS} tokens already; revoke one first")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        owner=owner, name=name, prefix=secret[:SHOWN], digest=digest_of(secret)
    )
    return NewToken(row, secret)


def revoke(owner: User, token_pk: int) -> bool:
    """Delete one of `owner`'s tokens; False if they have none of that id."""
    deleted, _ = ApiToken.objects.filter(owner=owner, pk=token_pk).delete()
    return deleted > 0


def user_for(secret: str) -> User | None:
    """The active owner of a token, or None for anything else."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = ApiToken.objects.select_related("owner").filter(digest=digest_of(secret)).first()
    if row is None or not row.owner.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.owner
