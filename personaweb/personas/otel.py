"""The OpenTelemetry side of tracing.py: its spans, handed to the official SDK and exported
over OTLP/HTTP (protobuf).

Imported only when tracing is on (tracing.from_env). Each span arrives finished, so it is
started and ended at once, with its own start and end times and its parent given explicitly as
a remote span context. The SDK makes span ids itself; `TreeIds`, the provider's IdGenerator,
gives it the ids tracing.py derived from the tree instead, so a span ended in one process is
the child of a span ended in another.

Every span is exported (the sampler is ALWAYS_ON): with spans ended in several processes, a
sampling decision taken per span would break traces apart.
"""

from __future__ import annotations

import contextvars
from importlib import metadata

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from personaweb.personas import tracing

DEFAULT_SERVICE_NAME = "personaweb"

_chosen: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "personaweb_span_ids", default=None
)
"""The ids of the span being started (set only around `start_span`)."""


class TreeIds(IdGenerator):
    """The ids tracing.py chose for the span being started; random ones for anyone else's."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        chosen = _chosen.get()
        return chosen[0] if chosen is not None else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        chosen = _chosen.get()
        return chosen[1] if chosen is not None else self._random.generate_span_id()


def service_resource() -> Resource:
    """The standard resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named personaweb
    when nothing names it."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _version() -> str:
    try:
        return metadata.version("personaweb")
    except metadata.PackageNotFoundError:
        return "0"


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OtelSink:
    """A tracing.SpanSink that exports through an OpenTelemetry TracerProvider of its own
    (never the global one: its IdGenerator is special)."""

    def __init__(self, provider: TracerProvider, *, capture_content: bool = False) -> None:
        self.provider = provider
        self.capture_content = capture_content
        """Whether spans may carry message content."""
        self._tracer = provider.get_tracer("personaweb.personas", _version())

    @classmethod
    def with_exporter(
        cls, exporter: SpanExporter, *, capture_content: bool = False, batch: bool = True
    ) -> OtelSink:
        """A sink over `exporter`: batched in the background (the default), or exported as
        each span ends."""
        provider = TracerProvider(
            sampler=ALWAYS_ON, resource=service_resource(), id_generator=TreeIds()
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider, capture_content=capture_content)

    @classmethod
    def from_env(cls, *, capture_content: bool = False) -> OtelSink:
        """OTLP over HTTP/protobuf, configured by the standard OTEL_EXPORTER_OTLP_* variables;
        what is still queued is sent when the process exits."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.with_exporter(OTLPSpanExporter(), capture_content=capture_content)

    def emit(self, span: tracing.Span) -> None:
        if span.parent_id is None:
            context = Context()  # a root, whatever span may be current in this task
        else:
            parent = SpanContext(
                span.trace_id,
                span.parent_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        token = _chosen.set((span.trace_id, span.span_id))
        try:
            started = self._tracer.start_span(
                span.name,
                context=context,
                kind=SpanKind.CLIENT if span.client else SpanKind.INTERNAL,
                attributes=span.attributes,
                start_time=_ns(span.start),
            )
        finally:
            _chosen.reset(token)
        for event in span.events:
            started.add_event(event.name, event.attributes, timestamp=_ns(event.at))
        if span.error is not None:
            started.set_status(Status(StatusCode.ERROR, span.error))
        started.end(end_time=_ns(span.end))

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export what is queued now (tests; a command about to exit)."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()
