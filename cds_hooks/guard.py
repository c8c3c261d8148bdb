"""The outermost ASGI layer of the service: bounded bodies and one answer for every unexpected error.

- **Body**: a declared ``Content-Length`` over ``max_body_bytes`` is answered 413 before one byte
  of the body is read; a chunked body is counted as it arrives and cut at the same limit; the
  whole body must arrive within ``body_timeout_seconds`` (408), so a client sending one byte every
  two seconds holds nothing for long. The app then reads the body from memory.
- **Errors**: an exception no handler translated becomes a 500 whose body carries an error id, and
  exactly one structured log line (``error_id``, exception type, method, route template) with no
  request parameters, SQL parameters or message text, which may quote PHI. No traceback is
  printed.

    app.add_middleware(GuardMiddleware, max_body_bytes=8_000_000, body_timeout=10.0)
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import anyio

log = logging.getLogger("cds97530.errors")

Scope = dict[str, Any]
Message = dict[str, Any]


def new_error_id() -> str:
    return uuid.uuid4().hex[:16]


def outcome_body(message: str, code: str, error_id: str | None = None) -> bytes:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": message}
    if error_id:
        issue["details"] = {"text": f"error id {error_id}"}
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [issue]}
    if error_id:
        body["id"] = error_id
    return json.dumps(body).encode()


async def _send_json(send: Any, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app: Any, *, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                body = await self._read_body(scope, receive, tracked_send)
                if body is None:
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, tracked_send)
        except Exception as exc:  # noqa: BLE001 - the one place an untranslated error becomes a 500
            error_id = new_error_id()
            route = scope.get("route")
            log.error("unexpected error", extra={
                "error_id": error_id, "error": type(exc).__name__, "method": scope.get("method"),
                "route": getattr(route, "path", None) or _path_shape(scope.get("path", "")),
            })
            if not started:
                await _send_json(send, 500, outcome_body(f"internal error; quote error id {error_id}",
                                                         "exception", error_id))

    async def _read_body(self, scope: Scope, receive: Any, send: Any) -> bytes | None:
        limit = self.max_body_bytes
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                if not value.isdigit():
                    await _send_json(send, 400, outcome_body("Content-Length is not a number", "invalid"), close=True)
                    return None
                if int(value) > limit:
                    await _send_json(send, 413, outcome_body(f"request body over {limit} bytes", "too-long"), close=True)
                    return None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_timeout) as scope_:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await _send_json(send, 413, outcome_body(f"request body over {limit} bytes", "too-long"), close=True)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if scope_.cancelled_caught:
            await _send_json(send, 408, outcome_body(f"request body not received within {self.body_timeout:g} s",
                                                     "timeout"), close=True)
            return None
        return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then wait for the disconnect, as the server would

    return replay


def _path_shape(path: str) -> str:
    """The path with ids replaced (``/evaluations/{id}``), so a log line never carries one."""
    parts = path.split("/")
    return "/".join(p if p in ("", "cds-services", "evaluations", "feedback", "healthz") else "{x}" for p in parts)
