"""The evaluation pool's hard deadline, the guard's one 500 with an error id, and the store's
refusal of values it cannot hold (PostgreSQL when ``CDS97530_TEST_DATABASE_URL`` is set)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cds_hooks.evaluation_pool import EvaluationFailed, EvaluationPool
from cds_hooks.guard import GuardMiddleware
from cds_hooks.logs import JsonFormatter


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def pool() -> Any:
    p = EvaluationPool(size=2, memory_mb=256)
    assert p.wait_ready(timeout=120)
    yield p
    p.close()


def test_a_job_past_the_deadline_is_cut_its_worker_killed_and_the_other_keeps_serving(pool: EvaluationPool) -> None:
    async def main() -> tuple[float, float, int]:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                await pool.call("burn", 30.0)
        cut = time.perf_counter() - started
        started = time.perf_counter()
        pid = await pool.call("ping")  # the other worker answers at once
        return cut, time.perf_counter() - started, pid

    killed_before = pool.stats.killed_at_deadline
    pids_before = set(pool.pids())
    cut, ping, pid = asyncio.run(main())
    assert cut < 0.8, f"the caller waited {cut:.2f} s for a 0.3 s deadline"
    assert ping < 0.5 and pid in pids_before
    time.sleep(0.2)
    assert pool.stats.killed_at_deadline == killed_before + 1
    gone = pids_before - set(pool.pids())
    assert len(gone) == 1, "exactly the overrunning worker is replaced"
    assert not Path(f"/proc/{gone.pop()}").exists()  # the killed worker is gone, not left running
    assert pool.wait_ready(timeout=120)


def test_a_job_that_fails_in_the_worker_is_reported_by_type_and_the_worker_replaced(pool: EvaluationPool) -> None:
    async def bad_kwarg() -> None:
        with pytest.raises(EvaluationFailed, match="TypeError"):
            await pool.call("ping", unexpected=1)

    recycled = pool.stats.recycled
    asyncio.run(bad_kwarg())
    assert pool.stats.recycled == recycled + 1
    assert pool.wait_ready(timeout=120)


def test_a_job_that_never_gets_a_free_worker_is_refused_at_the_deadline(pool: EvaluationPool) -> None:
    async def main() -> float:
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(_burn_quietly, 1.0)
            await anyio.sleep(0.1)
            started = time.perf_counter()
            with pytest.raises(TimeoutError):
                with anyio.fail_after(0.3):
                    await pool.call("ping")
            return time.perf_counter() - started

    async def _burn_quietly(seconds: float) -> None:
        try:
            with anyio.fail_after(seconds):
                await pool.call("burn", 10.0)
        except TimeoutError:
            pass

    assert asyncio.run(main()) < 0.8
    assert pool.wait_ready(timeout=120)


# --- the guard: one 500 with an error id, one log line, no traceback, no parameters ---------------
def test_an_untranslated_error_is_one_500_with_an_error_id_and_one_structured_log_line(caplog: Any) -> None:
    secret = "Zyxwvut Quillfeather"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError(f"INSERT failed [parameters: ('{secret}',)]")

    guarded = GuardMiddleware(app, max_body_bytes=1000, body_timeout=1.0)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t") as c:
            return await c.post("/cds-services/x/feedback?patient=" + secret, content=b"{}")

    with caplog.at_level(logging.ERROR, logger="cds97530.errors"):
        response = asyncio.run(main())
    assert response.status_code == 500
    error_id = response.json()["id"]
    assert len(error_id) == 16 and error_id in response.text
    (record,) = [r for r in caplog.records if r.name == "cds97530.errors"]
    line = JsonFormatter().format(record)
    assert json.loads(line)["error_id"] == error_id and json.loads(line)["error"] == "RuntimeError"
    assert secret not in line and "parameters" not in line and "Traceback" not in line
    assert secret not in response.text


def test_the_guard_refuses_declared_and_streamed_bodies_over_the_limit_before_buffering() -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = GuardMiddleware(app, max_body_bytes=1000, body_timeout=1.0)

    async def main() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t") as c:
            async def chunks():
                for _ in range(10):
                    yield b"x" * 500
            return [(await c.post("/a", content=b"x" * 2000)).status_code,
                    (await c.post("/a", content=chunks())).status_code,
                    (await c.post("/a", content=b"x" * 10)).status_code]

    assert asyncio.run(main()) == [413, 413, 200]
    assert seen == [b"x" * 10]


# --- the store refuses what it cannot hold, on SQLite and PostgreSQL -------------------------------
def _stores(tmp_path: Path, load_harness: Any) -> list[Any]:
    from contextlib import ExitStack

    from cds_hooks.store import Store

    stores = [Store(f"sqlite:///{tmp_path}/s.sqlite3")]
    url = os.environ.get("CDS97530_TEST_DATABASE_URL", "").strip()
    if url:
        stack = ExitStack()
        pg_url = stack.enter_context(load_harness.isolated_schema(url, purpose="storeinput"))
        pg = Store(pg_url)
        pg._exit = stack  # type: ignore[attr-defined]
        stores.append(pg)
    for store in stores:
        store.create_tables()
    return stores


def test_jti_and_feedback_values_the_store_cannot_hold_are_refused_not_raised(tmp_path: Path, load_harness: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from cds_hooks.store import UnstorableInputError

    for store in _stores(tmp_path, load_harness):
        try:
            later = datetime.now(UTC) + timedelta(minutes=5)
            assert store.remember_jti("https://iss.test", "j" * 201, later) is False
            assert store.remember_jti("https://iss.test", "abc\x00def", later) is False
            assert store.remember_jti("https://iss.test", "j" * 200, later) is True
            item = {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
                    "overrideReason": {"reason": {"system": "s" * 301, "code": "x"}}}
            for bad in ("s" * 301, "\ud800", "a\x00b"):
                item["overrideReason"]["reason"]["system"] = bad
                with pytest.raises(UnstorableInputError):
                    store.save_feedback([item], service_id="svc", client="c")
        finally:
            store.dispose()
            if hasattr(store, "_exit"):
                store._exit.close()
