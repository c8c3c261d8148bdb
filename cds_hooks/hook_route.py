"""The service call (``POST /cds-services/{id}``) answered as plain ASGI, before FastAPI's routing.

The hook is the one hot route: under load FastAPI's route matching, dependency solving, request
and response objects and its exception middleware cost about 0.4 ms of the event loop per call
(measured under ``wrk``, see docs/benchmarks.md), for a route that takes one path segment and
one header. This middleware sits inside every user middleware (the body guard, CORS, the dev-mode
header), so those still apply; it recognises the call by method and path, reads the body the
guard has already capped and timed, and runs the same ``routes.hook_answer`` as the FastAPI route
(which stays registered and answers when this layer is absent). Answers are the same bytes:

- 200 ``application/json``, the cards, as Starlette's ``JSONResponse`` renders them;
- a ``CdsError``: 401 with only ``WWW-Authenticate: Bearer``, else its status with an
  ``application/fhir+json`` OperationOutcome, as the app's exception handler answers it;
- anything else propagates to the guard (one 500 with an error id), as before.

Every other request (another method, ``/feedback``, a trailing slash, a sub-path) goes on to
FastAPI untouched.

    app.add_middleware(HookRoute)   # innermost: added before the guard and CORS
"""
from __future__ import annotations

import json
from typing import Any

from cds_hooks.errors import AuthError, CdsError, PayloadTooLargeError, operation_outcome
from cds_hooks.routes import hook_answer

_PREFIX = "/cds-services/"


def _route_path(scope: dict[str, Any]) -> str:
    """The path below the app's ``root_path`` (Starlette's rule, for an app mounted under a prefix)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and len(path) > len(root) and path[len(root)] == "/":
        return path[len(root):]
    return path


def render_json(content: Any) -> bytes:
    """What Starlette's ``JSONResponse`` sends for ``content``."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def error_answer(exc: CdsError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of a typed error, as ``app._error_answers`` answers it."""
    if isinstance(exc, AuthError):
        return 401, [(b"content-length", b"0"), (b"www-authenticate", b"Bearer")], b""
    body = render_json(operation_outcome(str(exc), code=exc.code))
    return exc.status_code, [(b"content-length", str(len(body)).encode()),
                             (b"content-type", b"application/fhir+json")], body


class HookRoute:
    """ASGI middleware answering ``POST /cds-services/{service_id}`` (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        service_id = path[len(_PREFIX):] if path.startswith(_PREFIX) else ""
        if not service_id or "/" in service_id:
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.cds
        authorization: str | None = None
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            body = await _read_body(receive, runtime.settings.max_body_bytes)
            if body is None:
                return  # the client went away
            payload, extra = await hook_answer(runtime, service_id, body, authorization)
        except CdsError as exc:
            status, headers, content = error_answer(exc)
        else:
            status, content = 200, render_json(payload)
            headers = [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
            headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The body (already capped and timed by the guard, which hands it over in one message);
    ``limit`` again for an app composed without the guard. None if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
