"""The style model a comparison scores with: the bundled cast plus the comparison's character.

Training takes a few milliseconds per character but a live page re-scores on every update, so
models are cached per process, keyed by the exact sample lines they learned from (an edited
character is a new key, never a stale model), and so are scores, keyed by the model itself
and the reply (a finished reply never changes, and a page shows many of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

from personaweb.characters.sheet import CharacterError, load_bundled
from personaweb.characters.style import StyleModel, StyleScore

CACHE_SIZE = 16
SCORE_CACHE_SIZE = 20_000
"""Replies whose scores are kept (a 20-line x 20-sample x 4-contender comparison is 1,600)."""

Corpus = tuple[tuple[str, tuple[str, ...]], ...]

_cache: OrderedDict[Corpus, StyleModel] = OrderedDict()
_lock = threading.Lock()


@lru_cache(maxsize=1)
def bundled_corpus() -> dict[str, tuple[str, ...]]:
    """Sample lines of the bundled characters, by slug (empty if they cannot be read)."""
    try:
        sheets = load_bundled()
    except CharacterError:
        return {}
    return {s.slug: tuple(s.sample_lines) for s in sheets if s.sample_lines}


def model_for(slug: str, sample_lines: Sequence[str]) -> StyleModel | None:
    """A model that knows `slug` (with these lines, replacing a bundled namesake) and the
    bundled cast; None when the character has no sample lines to learn from."""
    lines = tuple(str(line) for line in sample_lines if str(line).strip())
    if not lines:
        return None
    corpus = {**bundled_corpus(), slug: lines}
    if len(corpus) < 2:
        return None  # a classifier over one author says nothing
    key: Corpus = tuple(sorted(corpus.items()))
    with _lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
    model = StyleModel.from_lines(dict(key))
    with _lock:
        _cache[key] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model


@lru_cache(maxsize=SCORE_CACHE_SIZE)
def score(model: StyleModel, text: str, slug: str) -> StyleScore:
    """model.score(text, slug), remembered (models hash by identity; see StyleModel)."""
    return model.score(text, slug)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
    bundled_corpus.cache_clear()
    score.cache_clear()
