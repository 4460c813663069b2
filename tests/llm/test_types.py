"""A chat message is its own JSON form, and never changes once made."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from personaweb.llm.types import CallRecord, ChatMessage, ChatRequest, Completion, LLMProfile


def test_a_message_is_its_json_and_cannot_change() -> None:
    message = ChatMessage("user", "Héllo \u2028 there")
    assert message.role == "user" and message.content == "Héllo \u2028 there"
    assert message == {"role": "user", "content": "Héllo \u2028 there"}
    assert json.loads(json.dumps(message)) == message
    assert message.to_dict() is message
    for change in (
        lambda: message.__setitem__("role", "system"),
        lambda: message.update(role="system"),
        lambda: message.pop("content"),
        lambda: message.clear(),
        lambda: message.setdefault("name", "x"),
        lambda: message.__delitem__("role"),
    ):
        with pytest.raises(TypeError):
            change()
    assert message == {"role": "user", "content": "Héllo \u2028 there"}
    # Hashable by value, and copies are messages still.
    assert len({message, ChatMessage("user", "Héllo \u2028 there")}) == 1
    for twin in (pickle.loads(pickle.dumps(message)), copy.deepcopy(message), copy.copy(message)):
        assert isinstance(twin, ChatMessage) and twin == message


def test_a_record_shares_the_prompt_it_was_sent_with() -> None:
    messages = tuple(ChatMessage("user", f"line {i}") for i in range(1000))
    request = ChatRequest(messages, LLMProfile(model="m"))
    record = CallRecord.of(request, Completion(text="ok", model="m"))
    assert record.messages == [{"role": "user", "content": f"line {i}"} for i in range(1000)]
    assert all(a is b for a, b in zip(record.messages, messages, strict=True))
    # Stored as plain JSON.
    stored = record.to_dict()
    assert json.loads(json.dumps(stored))["messages"][999] == {
        "role": "user",
        "content": "line 999",
    }
    assert CallRecord.from_dict(stored).messages == record.messages
