"""Traces from the web app: a click carries the person's name, spans carry the session, and the
inspector says where a node is in the traces (with a link when a backend URL is configured)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from personaweb.personas import Node, NodeKind, tracing
from personaweb.personas.otel import OtelSink
from personaweb.web import runs
from personaweb.web.models import NodeRow
from personaweb.web.store import OrmStore

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """The process's sink, as start-up installs it when an endpoint is set."""
    exporter = InMemorySpanExporter()
    before = tracing.installed()
    tracing.install(OtelSink.with_exporter(exporter, batch=False))
    yield exporter
    tracing.install(before)


async def test_a_click_is_recorded_with_the_persons_name_and_traced_in_the_session(
    async_client, alice, make_session, llm_server, exported
):
    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    base = session.get_absolute_url()
    await async_client.post(f"{base}send/", {"text": "Hello"})
    await runs.wait(session.pk)
    first = await NodeRow.objects.filter(session=session).order_by("-seq").afirst()
    assert first is not None and first.status == "proposed"

    assert (await async_client.post(f"{base}n/{first.id}/approve/")).status_code == 204
    await runs.wait(session.pk)

    await first.arefresh_from_db()
    (approval,) = first.data["human"]
    assert (approval["action"], approval["by"]) == ("approve", "alice")
    chats = [s for s in exported.get_finished_spans() if s.name.startswith("chat")]
    assert len(chats) == 2  # the orchestrator's decision and the responder's line
    assert {s.attributes["gen_ai.conversation.id"] for s in chats} == {str(session.pk)}
    assert {s.attributes["gen_ai.provider.name"] for s in chats} == {"openai"}
    assert {s.attributes["server.address"] for s in chats} == {"127.0.0.1"}
    # The node knows its span: the inspector shows it.
    html = (await async_client.get(f"{base}inspect/{first.id}/")).content.decode()
    assert first.data["trace"]["span_id"] in html
    assert first.data["trace"]["span_id"] == f"{chats[0].context.span_id:016x}"


def test_the_inspector_links_a_node_to_its_span_when_a_backend_url_is_set(
    client, alice, make_session, settings
):
    session = make_session(alice)
    node = Node(
        id=f"{session.pk:08x}{0:024x}",
        parent_id=None,
        persona="orchestrator",
        kind=NodeKind.INBOUND,
        content="Hello",
        sender="user",
        data={"trace": {"trace_id": TRACE_ID, "span_id": SPAN_ID}},
    )
    OrmStore(session.pk).add_many([node])
    client.force_login(alice)
    url = f"{session.get_absolute_url()}inspect/{node.id}/"

    html = client.get(url).content.decode()
    assert TRACE_ID in html and SPAN_ID in html
    assert "open</a>" not in html  # no backend configured: ids only

    settings.TRACE_URL = (
        "https://langfuse.example/project/p/traces/{trace_id}?observation={span_id}"
    )
    html = client.get(url).content.decode()
    link = f"https://langfuse.example/project/p/traces/{TRACE_ID}?observation={SPAN_ID}"
    assert f'href="{link}"' in html


def test_a_hand_made_trace_id_never_becomes_a_link(client, alice, make_session, settings):
    session = make_session(alice)
    settings.TRACE_URL = "https://phoenix.example/traces/{trace_id}"
    node = Node(
        id=f"{session.pk:08x}{0:024x}",
        parent_id=None,
        persona="orchestrator",
        kind=NodeKind.INBOUND,
        content="Hello",
        sender="user",
        data={"trace": {"trace_id": "javascript:alert(1)//"}},
    )
    OrmStore(session.pk).add_many([node])
    client.force_login(alice)
    html = client.get(f"{session.get_absolute_url()}inspect/{node.id}/").content.decode()
    assert "phoenix.example" not in html
