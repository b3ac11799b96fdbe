"""Cross-language tracing: a pika producer and consumer instrumented with
opentelemetry-instrumentation-pika and OtterMQ export to one OTLP/gRPC receiver (run here,
decoding the protobuf with opentelemetry-proto); their spans must form one trace:
python producer -> broker publish -> broker deliver -> python consumer.

Needs AMQP_URL (a broker started with tracing on, exporting to OTLP_PORT) and OTLP_PORT.
"""
import os
import sys
import threading
import time
from concurrent import futures

import grpc
import pika
from opentelemetry.instrumentation.pika import PikaInstrumentor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

PASSED, FAILED = [], []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []  # (service, span)

    def Export(self, request, context):
        with self.lock:
            for rs in request.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
                    "",
                )
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append((service, s))
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self):
        with self.lock:
            return list(self.spans)


def main():
    port = int(os.environ["OTLP_PORT"])
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()

    provider = TracerProvider(resource=Resource.create({"service.name": "pika-app"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True))
    )
    PikaInstrumentor().instrument(tracer_provider=provider)

    conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello from pika", pika.BasicProperties(message_id="py-1"))
    got = {}

    def on_message(channel, method, properties, body):
        got["headers"] = dict(properties.headers or {})
        got["body"] = body
        channel.basic_ack(method.delivery_tag)
        channel.stop_consuming()

    ch.basic_consume(q, on_message)
    conn.call_later(10, ch.stop_consuming)
    ch.start_consuming()
    conn.close()
    check("message delivered", got.get("body") == b"hello from pika", got)

    # Wait for the broker's batch export (OTEL_BSP_SCHEDULE_DELAY is short in run.sh).
    deadline = time.time() + 20
    want = {"publish amq.default", f"deliver {q}"}
    while time.time() < deadline:
        names = {s.name for svc, s in receiver.snapshot() if svc == "ottermq"}
        if want <= names:
            break
        time.sleep(0.2)
    spans = receiver.snapshot()
    server.stop(0)
    for svc, s in spans:
        print(f"  span {svc:8} {s.name:30} trace={s.trace_id.hex()} id={s.span_id.hex()} "
              f"parent={s.parent_span_id.hex()} kind={s.kind}")

    def find(service, pred):
        return next((s for svc, s in spans if svc == service and pred(s)), None)

    publish = find("ottermq", lambda s: s.name == "publish amq.default")
    # The instrumentation nests two send spans (BlockingChannel over Channel); the broker's
    # parent must be one of the Python producer spans.
    producer = find("pika-app", lambda s: s.kind == PbSpan.SPAN_KIND_PRODUCER
                    and publish is not None and s.span_id == publish.parent_span_id)
    consumer = find("pika-app", lambda s: s.kind == PbSpan.SPAN_KIND_CONSUMER)
    deliver = find("ottermq", lambda s: s.name == f"deliver {q}")
    wait = find("ottermq", lambda s: s.name == f"queue {q}")
    for name, s in [("python producer span", producer), ("python consumer span", consumer),
                    ("broker publish span", publish), ("broker deliver span", deliver),
                    ("broker queue-wait span", wait)]:
        check(f"{name} exported", s is not None)
    if None in (producer, consumer, publish, deliver):
        return
    tid = producer.trace_id
    check("one trace id",
          all(s.trace_id == tid for s in (consumer, publish, deliver, wait) if s is not None),
          [s.trace_id.hex() for s in (producer, publish, deliver, consumer)])
    check("broker publish is a child of a python producer span",
          publish.parent_span_id == producer.span_id)
    check("broker deliver is a child of the broker publish",
          deliver.parent_span_id == publish.span_id)
    check("python consumer is a child of the broker deliver",
          consumer.parent_span_id == deliver.span_id)
    tp = got.get("headers", {}).get("traceparent")
    check("consumer header names the deliver span",
          tp == f"00-{tid.hex()}-{deliver.span_id.hex()}-01", tp)
    attrs = {a.key: a.value for a in publish.attributes}
    check("publish span attributes",
          attrs.get("messaging.system") and attrs["messaging.system"].string_value == "rabbitmq"
          and attrs["messaging.message.id"].string_value == "py-1"
          and attrs["messaging.rabbitmq.destination.routing_key"].string_value == q,
          attrs)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, reported like the others
        check("test ran", False, repr(e))
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED or not PASSED else 0)
