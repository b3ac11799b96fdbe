"""Celery round trip against OtterMQ: a real Celery worker (PyPI `celery`, pyamqp transport)
runs in its own vhost as its own user, both created through the management API, and a task
sent to it comes back with its result.

The result backend is Celery's file system backend (`file://`), not `rpc://`: rpc:// needs
direct reply-to (`amq.rabbitmq.reply-to`), which is being built on another branch. The task
and its dispatch go through OtterMQ (queue `celery`, exchange `celery`, the worker's
pidbox fanout); only the result returns through a shared directory.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request

import kombu
import pytest

AMQP_PORT = os.environ.get("AMQP_PORT")
HTTP_PORT = os.environ.get("HTTP_PORT")

pytestmark = pytest.mark.skipif(
    not (AMQP_PORT and HTTP_PORT), reason="needs a broker started by tests/python/run.sh"
)


def api(method, path, body=None, user="guest", password="guest"):
    req = urllib.request.Request(
        f"http://127.0.0.1:{HTTP_PORT}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{user}:{password}".encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


TASKS = textwrap.dedent(
    """
    import os
    from celery import Celery

    app = Celery(
        "otter",
        broker=os.environ["CELERY_BROKER"],
        backend="file://" + os.environ["CELERY_RESULTS"],
    )
    app.conf.broker_connection_retry_on_startup = False
    app.conf.task_acks_late = True

    @app.task
    def add(x, y):
        return x + y
    """
)


def test_celery_worker_runs_a_task_and_returns_its_result():
    vhost, user, password = "celery-vh", "celery-user", "celery-pw"
    assert api("PUT", f"/api/vhosts/{vhost}", {}) in (201, 204)
    assert api("PUT", f"/api/users/{user}", {"password": password, "tags": ""}) in (201, 204)
    assert (
        api("PUT", f"/api/permissions/{vhost}/{user}",
            {"configure": ".*", "write": ".*", "read": ".*"})
        in (201, 204)
    )
    # The user has no permission in "/": the broker refuses connection.open there.
    with pytest.raises(Exception) as refused:
        with kombu.Connection(
            f"amqp://{user}:{password}@127.0.0.1:{AMQP_PORT}//", connect_timeout=5
        ) as c:
            c.connect()
    assert "530" in str(refused.value) or "NOT_ALLOWED" in str(refused.value) \
        or "refused" in str(refused.value), refused.value

    work = tempfile.mkdtemp(prefix="ottermq-celery-")
    results = os.path.join(work, "results")
    os.mkdir(results)
    with open(os.path.join(work, "otter_tasks.py"), "w") as f:
        f.write(TASKS)
    env = dict(
        os.environ,
        PYTHONPATH=work,
        CELERY_BROKER=f"pyamqp://{user}:{password}@127.0.0.1:{AMQP_PORT}/{vhost}",
        CELERY_RESULTS=results,
    )
    log = open(os.path.join(work, "worker.log"), "w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "otter_tasks", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        sys.path.insert(0, work)
        os.environ.update(CELERY_BROKER=env["CELERY_BROKER"], CELERY_RESULTS=results)
        import otter_tasks

        r = otter_tasks.add.delay(2, 3)
        assert r.get(timeout=40) == 5
        # A second one over the same connection, by name.
        r2 = otter_tasks.app.send_task("otter_tasks.add", args=(40, 2))
        assert r2.get(timeout=20) == 42
    except Exception:
        log.seek(0)
        print(log.read())
        raise
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
