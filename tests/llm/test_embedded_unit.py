"""The embedded server's launch rules, without starting it."""

from __future__ import annotations

import json
import signal

import pytest

from personaweb.llm.embedded import (
    EmbeddedServer,
    EmbeddedStatus,
    describe_exit,
    read_status,
    server_env,
    write_status,
)


def test_the_server_environment_is_a_whitelist() -> None:
    env = server_env(
        {
            "PATH": "/bin",
            "HOME": "/root",
            "LC_ALL": "C.UTF-8",
            "PORT": "8080",
            "HOST": "0.0.0.0",
            "CONFIG_FILE": "/x.json",
            "MODEL": "/other.gguf",
            "N_CTX": "64",
            "OPENAI_API_KEY": "sk-secret",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/root", "LC_ALL": "C.UTF-8"}


def test_the_command_names_its_port_context_and_threads() -> None:
    command = EmbeddedServer(port=9123, n_ctx=4096, n_threads=2).command()
    assert command[command.index("--port") + 1] == "9123"
    assert command[command.index("--n_ctx") + 1] == "4096"
    assert command[command.index("--n_threads") + 1] == "2"
    assert command[command.index("--interrupt_requests") + 1] == "False"


def test_exits_are_described_for_people() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGILL).startswith("was killed by SIGILL (illegal instruction")
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV (segmentation fault)"


def test_a_status_file_round_trips_and_bad_files_read_as_none(tmp_path) -> None:
    path = tmp_path / "status.json"
    status = EmbeddedStatus("dead", "http://127.0.0.1:1/v1", pid=7, exit="exited with code 1")
    write_status(path, status)
    assert read_status(path) == status
    assert read_status(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_status(tmp_path / "bad.json") is None
    assert read_status(None) is None


def test_grammar_literals_escape_backslashes_once_fixed() -> None:
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    from personaweb.llm.llama_server import fix_grammar_literals

    schema = json.dumps({"type": "string", "enum": ['say "no"']})
    fix_grammar_literals()
    grammar = llama_grammar.json_schema_to_gbnf(schema)
    # The JSON text "say \"no\"" as a grammar literal: quote, backslash and quote escaped.
    assert r'"\"say \\\"no\\\"\""' in grammar


def test_the_embedded_model_moves_off_the_port_the_app_is_given() -> None:
    """`make run PORT=8765` (the model's default port): the model takes another one, and the
    app is told where it is; any other port leaves the model where it was."""
    from personaweb.launch import apart_from_app
    from personaweb.llm.config import DEFAULT_EMBEDDED_PORT, endpoint_from_env

    env: dict[str, str] = {}
    config = endpoint_from_env(env)
    assert apart_from_app(config, env, 8000) is config and env == {}
    moved = apart_from_app(config, env, DEFAULT_EMBEDDED_PORT)
    assert moved.embedded and moved.embedded_port != DEFAULT_EMBEDDED_PORT
    assert env["PERSONAWEB_EMBEDDED_PORT"] == str(moved.embedded_port)
    assert moved.base_url == f"http://127.0.0.1:{moved.embedded_port}/v1"
    assert endpoint_from_env(env) == moved  # what the app reads from its environment
    # An endpoint of one's own (OpenAI, vLLM, Ollama) has no model to move.
    remote = endpoint_from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8765/v1"})
    assert apart_from_app(remote, {}, 8765) is remote
