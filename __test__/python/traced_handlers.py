"""A Python handler that makes a span of its own with opentelemetry-api, as
application code would; its SDK exports to the collector the test names in
REDESMYN_TEST_OTLP (the core exports only its own spans). opentelemetry-* come
from requirements-tracing.txt."""

import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "python-handler"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["REDESMYN_TEST_OTLP"])))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("app")


def predict(df):
    with tracer.start_as_current_span("py-handler-work") as span:
        span.set_attribute("app.rows", df.height)
        return df["x"] + 1
