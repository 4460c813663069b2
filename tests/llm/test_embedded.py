"""The real embedded model (SmolLM2-135M under llama.cpp): slow-ish, needs the `local` extra."""

from __future__ import annotations

from typing import Any

import pytest

from personaweb.llm import (
    ChatMessage,
    ChatRequest,
    Completion,
    EndpointConfig,
    LLMProfile,
    OpenAIChatModel,
)
from personaweb.llm.config import EMBEDDED_MODEL
from personaweb.llm.embedded import EmbeddedServer, find_gguf

pytestmark = pytest.mark.embedded

DECISION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["delegate", "reply"]},
        "to": {"type": "string", "enum": ["responder", "style_rewriter"]},
        "message": {"type": "string", "minLength": 1},
    },
    "required": ["action", "to", "message"],
    "additionalProperties": False,
}


def embedded_model(server: EmbeddedServer) -> OpenAIChatModel:
    config = EndpointConfig(
        server.base_url, "sk-local", EMBEDDED_MODEL, embedded=True, embedded_port=server.port
    )
    return OpenAIChatModel(config)


def test_the_model_file_ships_in_the_wheel(embedded_server: EmbeddedServer) -> None:
    assert find_gguf().suffix == ".gguf"


async def test_it_streams_a_short_reply(embedded_server: EmbeddedServer) -> None:
    model = embedded_model(embedded_server)
    request = ChatRequest(
        (ChatMessage("user", "Say hello in a few words."),),
        LLMProfile(max_tokens=16, temperature=0.0),
    )
    deltas: list[str] = []
    final: Completion | None = None
    async for chunk in model.stream(request):
        if chunk.completion is not None:
            final = chunk.completion
        else:
            deltas.append(chunk.delta)
    await model.aclose()

    assert final is not None
    assert final.text.strip()
    assert "".join(deltas) == final.text
    assert final.model == EMBEDDED_MODEL
    # llama.cpp's server sends no usage while streaming: the count is estimated from chunks.
    assert final.usage_estimated
    assert final.completion_tokens == len(deltas)


async def test_it_makes_a_schema_valid_delegation_decision(
    embedded_server: EmbeddedServer,
) -> None:
    model = embedded_model(embedded_server)
    request = ChatRequest(
        (
            ChatMessage(
                "system",
                "You are an orchestrator with helpers `responder` and `style_rewriter`. "
                "Answer only with JSON with keys action, to, message.",
            ),
            ChatMessage("user", "I am Joe. Who are you?"),
        ),
        LLMProfile(max_tokens=128, temperature=0.0),
        schema=DECISION,
    )

    completion = await model.complete(request)
    await model.aclose()

    # The grammar constrains the output; our own validation ran and filled `parsed`.
    assert completion.parsed["action"] in ("delegate", "reply")
    assert completion.parsed["to"] in ("responder", "style_rewriter")
    assert completion.parsed["message"]
    assert model.structured_dialect() == "json_object"


async def test_concurrent_streams_do_not_cut_each_other_off(
    embedded_server: EmbeddedServer,
) -> None:
    # llama.cpp's server interrupts a stream when another request arrives, unless told not to;
    # comparison columns and several sessions stream at once.
    import asyncio

    model = embedded_model(embedded_server)

    async def ask(text: str) -> str:
        request = ChatRequest((ChatMessage("user", text),), LLMProfile(max_tokens=24))
        final = None
        async for chunk in model.stream(request):
            if chunk.completion is not None:
                final = chunk.completion
        assert final is not None
        return final.text

    first, second = await asyncio.gather(ask("Name a colour."), ask("Name an animal."))
    await model.aclose()
    assert first.strip() and second.strip()


# --- first-run honesty ------------------------------------------------------------------------


def test_the_server_takes_its_settings_only_from_us(monkeypatch) -> None:
    # llama-cpp-python's server reads HOST, PORT and CONFIG_FILE from the environment:
    # `make run PORT=8080` once made it bind the app's port.
    import json
    import socket
    import urllib.request

    from personaweb.llm.scripted_server import free_port

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    monkeypatch.setenv("PORT", str(taken.getsockname()[1]))
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("CONFIG_FILE", "/nonexistent/config.json")
    monkeypatch.setenv("N_CTX", "64")
    try:
        with (
            EmbeddedServer(port=free_port()) as server,
            urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as resp,
        ):
            assert json.load(resp)["data"][0]["id"] == EMBEDDED_MODEL
    finally:
        taken.close()


def test_a_dead_server_is_reported_with_how_it_died_and_what_to_do(tmp_path) -> None:
    import asyncio
    import os
    import signal
    import time

    from personaweb.llm import calls
    from personaweb.llm.embedded import read_status, write_status
    from personaweb.llm.scripted_server import free_port

    status_file = tmp_path / "status.json"
    server = EmbeddedServer(port=free_port()).start()
    try:
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.death() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        death = server.death()
        assert death is not None and death.dead
        assert death.pid == server.pid and "SIGKILL" in death.exit
        assert "Uvicorn running" in death.tail or "Application startup" in death.tail
        assert "make run" in death.advice
        write_status(status_file, death)

        # The web app reads the report: the failed call names the dead process, not a
        # bare "cannot connect", and nothing retries a server that will not come back.
        config = EndpointConfig(
            server.base_url,
            "sk-local",
            EMBEDDED_MODEL,
            embedded=True,
            embedded_port=server.port,
            status_path=str(status_file),
        )
        model = OpenAIChatModel(config)
        result = asyncio.run(
            calls.generate(model, [ChatMessage("user", "hi")], LLMProfile(max_tokens=4))
        )
        assert isinstance(result, calls.Failure)
        assert f"pid {server.pid}" in result.reason and "SIGKILL" in result.reason
        assert "after" not in result.reason  # not retried
        assert read_status(status_file) == death
    finally:
        server.stop()


def test_the_launcher_reports_a_death_and_does_not_restart_a_crash_loop(tmp_path, capsys) -> None:
    import os
    import signal
    import time

    from personaweb.launch import EmbeddedSupervisor
    from personaweb.llm.config import endpoint_from_env
    from personaweb.llm.embedded import read_status
    from personaweb.llm.scripted_server import free_port

    config = endpoint_from_env({"PERSONAWEB_EMBEDDED_PORT": str(free_port())})
    supervisor = EmbeddedSupervisor(config, tmp_path / "status.json")
    supervisor.start()
    try:
        status = read_status(supervisor.status_path)
        assert status is not None and status.state == "ready"
        os.kill(supervisor.server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not supervisor.down and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.05)
        assert supervisor.down  # it died within a minute of starting: no restart loop
        status = read_status(supervisor.status_path)
        assert status is not None and status.dead and "SIGKILL" in status.exit
        printed = capsys.readouterr()
        assert "was killed by SIGKILL" in printed.err and "Not restarting" in printed.out
    finally:
        supervisor.stop()


async def test_a_schema_whose_enum_quotes_someone_is_answered_not_a_crash(
    embedded_server: EmbeddedServer,
) -> None:
    # A guided orchestrator relays the responder's reply as the one allowed message; a reply
    # that quotes someone once made llama-cpp-python build a grammar llama.cpp could not parse,
    # and the server died of SIGSEGV (personaweb/llm/llama_server.py).
    relayed = 'He said "what are you doing here?"\nand left. A back\\slash too.'
    schema = {**DECISION, "properties": {**DECISION["properties"]}}
    schema["properties"]["message"] = {"type": "string", "enum": [relayed]}
    model = embedded_model(embedded_server)
    request = ChatRequest(
        (
            ChatMessage("system", "Answer only with JSON with keys action, to, message."),
            ChatMessage("user", f"Pass this on to style_rewriter: {relayed}"),
        ),
        LLMProfile(max_tokens=128, temperature=0.0),
        schema=schema,
    )
    completion = await model.complete(request)
    await model.aclose()
    assert completion.parsed["message"] == relayed
    assert embedded_server.death() is None
