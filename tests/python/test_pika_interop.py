"""Cross-language test: pika (Python) against OtterMQ, the way Python applications use it.

The broker URL comes from AMQP_URL. Every blocking call is bounded so a broken broker fails
fast instead of hanging. These tests also pass against RabbitMQ 3.10 (scripts/rabbitmq.sh).
"""

import os
import time
import uuid

import pika
import pytest

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn():
    params = pika.URLParameters(URL)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    c = pika.BlockingConnection(params)
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    return conn.channel()


def drain(ch, queue, expected, timeout=5.0, auto_ack=False):
    """Consumes `expected` messages (or until timeout), acking them unless auto_ack."""
    got = []
    deadline = time.time() + timeout
    for method, props, body in ch.consume(queue, auto_ack=auto_ack, inactivity_timeout=0.5):
        if method is not None:
            got.append((method, props, body))
            if not auto_ack:
                ch.basic_ack(method.delivery_tag)
        if len(got) >= expected or time.time() > deadline:
            break
    ch.cancel()
    return got


def test_declare_bind_publish_confirm_consume(ch):
    ex, q = name("ex"), name("q")
    ch.exchange_declare(ex, "direct")
    ch.queue_declare(q, auto_delete=True)
    ch.queue_bind(q, ex, "rk")
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish(ex, "rk", b"m%d" % i)  # raises if nacked
    got = drain(ch, q, 20)
    assert [b for _, _, b in got] == [b"m%d" % i for i in range(20)]
    ch.exchange_delete(ex)


def test_nack_requeue_comes_back_redelivered(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"again")
    method, _, body = ch.basic_get(q)
    assert body == b"again" and not method.redelivered
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(q)
    assert body == b"again" and method.redelivered
    ch.basic_ack(method.delivery_tag)


def test_reject_without_requeue_drops(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"gone")
    method, _, _ = ch.basic_get(q)
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert ch.basic_get(q) == (None, None, None)


def test_get_and_get_empty_with_message_count(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    assert ch.basic_get(q) == (None, None, None)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"0"
    assert method.message_count == 2


def test_topic_routing(ch):
    ex = name("topic")
    ch.exchange_declare(ex, "topic", auto_delete=True)
    qs = {}
    for pattern in ["a.*.c", "a.#", "#.c", "*"]:
        qs[pattern] = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(qs[pattern], ex, pattern)
    for key in ["a.b.c", "a", "x.c", "b", "a.b.b.c"]:
        ch.basic_publish(ex, key, key.encode())
    time.sleep(0.2)

    def bodies(q):
        out = []
        while True:
            m, _, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append(b.decode())

    assert bodies(qs["a.*.c"]) == ["a.b.c"]
    assert bodies(qs["a.#"]) == ["a.b.c", "a", "a.b.b.c"]
    assert bodies(qs["#.c"]) == ["a.b.c", "x.c", "a.b.b.c"]
    assert bodies(qs["*"]) == ["a", "b"]


def test_headers_routing_all_and_any(ch):
    ex = name("hdr")
    ch.exchange_declare(ex, "headers", auto_delete=True)
    q_all = ch.queue_declare("", exclusive=True).method.queue
    q_any = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q_all, ex, "", arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, ex, "", arguments={"x-match": "any", "format": "pdf", "type": "report"})
    ch.basic_publish(ex, "", b"both", pika.BasicProperties(headers={"format": "pdf", "type": "report"}))
    ch.basic_publish(ex, "", b"one", pika.BasicProperties(headers={"format": "pdf", "type": "log"}))
    ch.basic_publish(ex, "", b"none", pika.BasicProperties(headers={"format": "zip"}))
    time.sleep(0.2)
    assert [b for _, _, b in drain(ch, q_all, 1, timeout=1, auto_ack=True)] == [b"both"]
    assert [b for _, _, b in drain(ch, q_any, 2, timeout=1, auto_ack=True)] == [b"both", b"one"]


def test_mandatory_unroutable_is_returned(ch):
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", name("nobody"), b"x", mandatory=True)


def test_properties_round_trip(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    headers = {"s": "text", "i": 42, "neg": -7, "b": True, "nested": {"k": "v", "n": 1}, "list": [1, "two", False]}
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="kind",
        app_id="tests",
    )
    ch.basic_publish("", q, b"{}", props)
    _, got, body = ch.basic_get(q, auto_ack=True)
    assert body == b"{}"
    for field in [
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "app_id",
    ]:
        assert getattr(got, field) == getattr(props, field), field
    assert got.headers == headers


def test_large_body_intact(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    body = os.urandom(512 * 1024)
    ch.basic_publish("", q, body)
    _, _, got = ch.basic_get(q, auto_ack=True)
    assert got == body


def test_channel_error_leaves_connection_usable(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        ch.queue_declare(name("missing"), passive=True)
    assert err.value.reply_code == 404
    assert conn.is_open
    ch2 = conn.channel()
    q = ch2.queue_declare("", exclusive=True).method.queue
    ch2.basic_publish("", q, b"still fine")
    assert ch2.basic_get(q, auto_ack=True)[2] == b"still fine"
