#!/usr/bin/env python3
"""Probes quorum-queue behaviour of a broker on 127.0.0.1:PORT with pika (declare refusals,
x-delivery-count, x-delivery-limit, redeclare equivalence). Run against RabbitMQ 3.10 (scripts/rabbitmq.sh start, port
5673) and OtterMQ to compare: .venv-test/bin/python scripts/probe_quorum.py 5673"""
import pika, sys, time
port = int(sys.argv[1]) if len(sys.argv) > 1 else 5673
def conn():
    return pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port, credentials=pika.PlainCredentials('guest','guest')))
def try_declare(name, **kw):
    c = conn(); ch = c.channel()
    try:
        ch.queue_declare(name, **kw); print("OK", name, kw)
    except Exception as e:
        print("ERR", name, kw, repr(e))
    try: c.close()
    except Exception: pass
try_declare("qq-nd", durable=False, arguments={"x-queue-type":"quorum"})
try_declare("qq-ad", durable=True, auto_delete=True, arguments={"x-queue-type":"quorum"})
try_declare("qq-ex", durable=True, exclusive=True, arguments={"x-queue-type":"quorum"})
try_declare("qq-pr", durable=True, arguments={"x-queue-type":"quorum","x-max-priority":5})
try_declare("qq-lazy", durable=True, arguments={"x-queue-type":"quorum","x-queue-mode":"lazy"})
try_declare("qq-ttl", durable=True, arguments={"x-queue-type":"quorum","x-message-ttl":1000})
try_declare("qq-rpd", durable=True, arguments={"x-queue-type":"quorum","x-overflow":"reject-publish-dlx"})
try_declare("qq-dlneg", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit":-1})
try_declare("qq-dlstr", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit":"abc"})
try_declare("qq-bad", durable=True, arguments={"x-queue-type":"bogus"})
try_declare("qq-int", durable=True, arguments={"x-queue-type":5})
try_declare("cq-dl", durable=True, arguments={"x-queue-type":"classic","x-delivery-limit":1})
try_declare("qq-sac", durable=True, arguments={"x-queue-type":"quorum","x-single-active-consumer":True})
# redeclare with different type
try_declare("cq-plain", durable=True)
try_declare("cq-plain", durable=True, arguments={"x-queue-type":"quorum"})
try_declare("qq-mix", durable=True, arguments={"x-queue-type":"quorum"})
try_declare("qq-mix", durable=True)
try_declare("qq-mix", durable=True, arguments={"x-queue-type":"classic"})

c = conn(); ch = c.channel()
ch.exchange_declare("dlx-probe", "fanout")
ch.queue_declare("dlq-probe", durable=True); ch.queue_bind("dlq-probe", "dlx-probe"); ch.queue_purge("dlq-probe")
for q in ["qq-dl"]:
    try: ch.queue_delete(q)
    except Exception: pass
ch.queue_declare("qq-dl", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit":2,"x-dead-letter-exchange":"dlx-probe"})
ch.basic_publish("", "qq-dl", b"m1", pika.BasicProperties(headers={"a":1}, delivery_mode=2))
time.sleep(0.3)
for i in range(5):
    m, p, b = ch.basic_get("qq-dl")
    if m is None:
        print("get", i, "empty"); break
    print("get", i, "redelivered", m.redelivered, "headers", p.headers)
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.2)
time.sleep(0.5)
m, p, b = ch.basic_get("dlq-probe", auto_ack=True)
print("dlq", m and m.routing_key, p and p.headers, b)
# reject requeue vs channel close
ch.queue_declare("qq-dl2", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit":5})
ch.queue_purge("qq-dl2")
ch.basic_publish("", "qq-dl2", b"m2")
time.sleep(0.2)
c2 = conn(); ch2 = c2.channel()
m, p, b = ch2.basic_get("qq-dl2"); print("c2 got", p.headers)
ch2.close(); c2.close(); time.sleep(0.5)
m, p, b = ch.basic_get("qq-dl2"); print("after channel close", m.redelivered, p.headers)
ch.basic_reject(m.delivery_tag, requeue=True); time.sleep(0.2)
m, p, b = ch.basic_get("qq-dl2"); print("after reject", m.redelivered, p.headers)
ch.basic_recover(requeue=True) if False else None
ch.basic_ack(m.delivery_tag)
# delivery limit 0
ch.queue_declare("qq-dl0", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit":0})
ch.queue_purge("qq-dl0"); ch.basic_publish("", "qq-dl0", b"m3"); time.sleep(0.2)
m, p, b = ch.basic_get("qq-dl0"); print("dl0 first", p.headers); ch.basic_nack(m.delivery_tag, requeue=True); time.sleep(0.3)
m, p, b = ch.basic_get("qq-dl0"); print("dl0 second", m)
# declare-ok counts
print(ch.queue_declare("qq-dl", passive=True).method)
c.close()

# Redeclare equivalence: which arguments are compared, and the texts.
c = conn(); ch = c.channel()
def d(name, **kw):
    global c, ch
    try:
        ch.queue_declare(name, **kw); print("OK", name, kw)
    except Exception as e:
        print("ERR", name, kw, repr(e)[:260]); c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port)); ch = c.channel()
for q in ["eq-foo","eq-qq","eq-ml","eq-ttl","eq-dlx"]:
    try: ch.queue_delete(q)
    except Exception: c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port)); ch = c.channel()
d("eq-foo", durable=True, arguments={"x-foo": 1})
d("eq-foo", durable=True, arguments={"x-foo": 2})
d("eq-foo", durable=True)
d("eq-qq", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit": 1})
d("eq-qq", durable=True, arguments={"x-queue-type":"quorum","x-delivery-limit": 2})
d("eq-qq", durable=True, arguments={"x-queue-type":"quorum"})
d("eq-ml", durable=True, arguments={"x-max-length": 1})
d("eq-ml", durable=True, arguments={"x-max-length": 2})
d("eq-ml", durable=True, arguments={"x-max-length": 2**40})
d("eq-ml", durable=True)
d("eq-dlx", durable=True, arguments={"x-dead-letter-exchange": "a"})
d("eq-dlx", durable=True, arguments={"x-dead-letter-exchange": "b"})
d("eq-dlx", durable=True)
