"""Fitting a prompt to a model's context window.

A prompt that outgrows the window fails on the server (or, worse, is silently cut there). So
before every call the prompt is measured and, when it would not fit together with the reply's
`max_tokens`, earlier turns are left out, oldest first. The rules:

- the leading system messages (a character's sheet and sample lines live there) always stay;
- the latest turn (the last user message and anything after it) always stays;
- everything between is grouped into turns (a user message and the replies after it), and
  whole turns go, oldest first, until the prompt fits;
- if even that is too big, the call is refused with LLMContextExceeded and the numbers.

Tokens are counted by the server's tokenizer when it has one and the prompt is close to the
limit; otherwise by `estimate_tokens`, which errs on the high side (a prompt it passes fits).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from personaweb.llm.types import ChatMessage, LLMContextExceeded

MESSAGE_OVERHEAD = 8
"""Tokens a chat template adds around each message (role markers, separators): ChatML uses 5,
Llama 3's 4; a little more is a safety margin."""
SAFETY_MARGIN = 16
"""Tokens kept free beyond the reply's max_tokens, for templates' own extras."""
EXACT_ABOVE = 0.7
"""Count with the server's tokenizer only when the estimate uses more than this share of the
window: a small prompt fits either way, and the count costs a round trip."""

Counter = Callable[[list[str]], Awaitable[list[int] | None]]
"""Exact token counts for texts, or None when no tokenizer is at hand."""


def estimate_tokens(text: str) -> int:
    """A count that is at least what common tokenizers give: about 3 ASCII characters per
    token (English averages nearer 4) and 2 tokens per 3 bytes of other UTF-8 (CJK and emoji
    take one to three tokens per character)."""
    if text.isascii():
        return math.ceil(len(text) / 3)
    ascii_chars = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return math.ceil(ascii_chars / 3) + math.ceil(other_bytes / 1.5)


@dataclass(frozen=True)
class Fit:
    """A prompt fitted to a window."""

    messages: list[ChatMessage]
    """What to send."""
    left_out: int
    """How many earlier turns were left out (0: the prompt fitted as it was)."""
    prompt_tokens: int
    """The fitted prompt's size, by the count below."""
    budget: int
    """The context window it was fitted to."""
    counted: str
    """"server" (the server's tokenizer) or "estimate"."""

    def note(self) -> dict[str, object] | None:
        """What a CallRecord keeps about the fitting, or None when nothing was left out."""
        if not self.left_out:
            return None
        return {
            "left_out": self.left_out,
            "budget": self.budget,
            "prompt_tokens": self.prompt_tokens,
            "counted": self.counted,
        }


def _turns(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[list[ChatMessage]]]:
    """The leading system messages, and the rest grouped into turns (each starts at a user
    message; anything before the first user message is a turn of its own)."""
    head_end = 0
    while head_end < len(messages) and messages[head_end].role == "system":
        head_end += 1
    turns: list[list[ChatMessage]] = []
    for message in messages[head_end:]:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return list(messages[:head_end]), turns


async def fit_messages(
    messages: Sequence[ChatMessage],
    *,
    window: int,
    reply_tokens: int,
    count: Counter | None = None,
) -> Fit:
    """`messages` fitted to `window` tokens with room for `reply_tokens`; see the module rules.

    Raises LLMContextExceeded when the system messages and the latest turn alone do not fit."""
    available = window - reply_tokens - SAFETY_MARGIN
    head, turns = _turns(messages)
    texts = [m.content for m in messages]
    sizes = [estimate_tokens(t) + MESSAGE_OVERHEAD for t in texts]
    counted = "estimate"
    if count is not None and sum(sizes) > EXACT_ABOVE * available:
        exact = await count(texts)
        if exact is not None and len(exact) == len(texts):
            sizes = [n + MESSAGE_OVERHEAD for n in exact]
            counted = "server"
    head_size = sum(sizes[: len(head)])
    turn_sizes: list[int] = []
    at = len(head)
    for turn in turns:
        turn_sizes.append(sum(sizes[at : at + len(turn)]))
        at += len(turn)
    total = head_size + sum(turn_sizes)
    drop = 0
    # Whole turns go, oldest first; the latest turn always stays.
    while total > available and drop < len(turns) - 1:
        total -= turn_sizes[drop]
        drop += 1
    if total > available:
        raise LLMContextExceeded(
            f"the prompt needs about {total:,} tokens even with every earlier turn left out, "
            f"but the model's context window of {window:,} tokens leaves {max(available, 0):,} "
            f"after room for a {reply_tokens:,}-token reply",
            window=window,
            requested=total + reply_tokens,
        )
    kept = head + [m for turn in turns[drop:] for m in turn]
    return Fit(kept, drop, total, window, counted)
