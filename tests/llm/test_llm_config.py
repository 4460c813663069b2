from __future__ import annotations

import pytest

from personaweb.llm.config import EndpointConfig, endpoint_from_env


def test_with_nothing_configured_it_uses_the_embedded_model() -> None:
    assert endpoint_from_env({}) == EndpointConfig(
        base_url="http://127.0.0.1:8765/v1",
        api_key="sk-local",
        default_model="smollm2-135m-instruct",
        embedded=True,
        embedded_port=8765,
        context_tokens=2048,
    )


def test_the_embedded_port_is_configurable() -> None:
    config = endpoint_from_env({"PERSONAWEB_EMBEDDED_PORT": "9100"})
    assert config.base_url == "http://127.0.0.1:9100/v1"
    assert config.embedded_port == 9100


def test_the_embedded_server_ignores_a_model_override() -> None:
    # It serves exactly one model; another name would only mislabel the calls.
    assert endpoint_from_env({"PERSONAWEB_MODEL": "gpt-4o"}).default_model == (
        "smollm2-135m-instruct"
    )


def test_with_only_a_key_it_uses_openai_and_the_sdk_default_url() -> None:
    config = endpoint_from_env({"OPENAI_API_KEY": "sk-real"})
    assert config.base_url is None
    assert config.display_url == "https://api.openai.com/v1"
    assert config.api_key == "sk-real"
    assert config.default_model == "gpt-4o-mini"
    assert not config.embedded


def test_a_base_url_alone_selects_a_self_hosted_server() -> None:
    config = endpoint_from_env(
        {"OPENAI_BASE_URL": "http://vllm:8000/v1/", "PERSONAWEB_MODEL": "qwen2.5-7b"}
    )
    assert config.base_url == "http://vllm:8000/v1"
    assert config.default_model == "qwen2.5-7b"
    assert config.api_key  # the SDK refuses an empty key, even for servers that check none
    assert not config.embedded


def test_blank_values_count_as_unset() -> None:
    assert endpoint_from_env({"OPENAI_API_KEY": "  ", "OPENAI_BASE_URL": ""}).embedded


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_bad_port_fails_with_the_variable_name(port: str) -> None:
    with pytest.raises(ValueError, match="PERSONAWEB_EMBEDDED_PORT"):
        endpoint_from_env({"PERSONAWEB_EMBEDDED_PORT": port})


def test_the_context_window_can_be_set_and_is_checked() -> None:
    assert endpoint_from_env({"PERSONAWEB_CONTEXT_TOKENS": "8192"}).context_tokens == 8192
    remote = {"OPENAI_BASE_URL": "http://h/v1", "PERSONAWEB_CONTEXT_TOKENS": "4096"}
    assert endpoint_from_env(remote).context_tokens == 4096
    assert endpoint_from_env({"OPENAI_BASE_URL": "http://h/v1"}).context_tokens is None
    for bad in ("lots", "12"):
        with pytest.raises(ValueError, match="PERSONAWEB_CONTEXT_TOKENS"):
            endpoint_from_env({"PERSONAWEB_CONTEXT_TOKENS": bad})
