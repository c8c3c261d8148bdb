"""Server-side session store: the browser only ever holds an opaque, random session id.

fhirclient's state (authorization state, PKCE verifier, access token) and the launch context live
here, never in a cookie, URL or page. The cookie is HttpOnly and SameSite=Lax (the callback is a
top-level redirect from the authorization server, which Lax allows). In-memory and per-process:
the page is short-lived by design; a restart just means a relaunch from the EHR.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "cds97530_smart_sid"


class SessionStore:
    """Thread-safe dict of session id -> data with a time-to-live.

    >>> store = SessionStore(ttl_seconds=60)
    >>> sid = store.create({"step": "launched"})
    >>> store.get(sid)["step"]
    'launched'
    """

    def __init__(self, ttl_seconds: int = 3600, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, dict[str, Any]]] = {}

    def create(self, data: dict[str, Any] | None = None) -> str:
        sid = secrets.token_urlsafe(32)  # 256 bits
        with self._lock:
            self._purge_locked()
            self._data[sid] = (self._clock() + self._ttl, dict(data or {}))
        return sid

    def get(self, sid: str | None) -> dict[str, Any] | None:
        if not sid:
            return None
        with self._lock:
            item = self._data.get(sid)
            if item is None:
                return None
            expires, data = item
            if expires < self._clock():
                del self._data[sid]
                return None
            return dict(data)

    def update(self, sid: str, **changes: Any) -> None:
        with self._lock:
            item = self._data.get(sid)
            if item is None:
                return
            item[1].update(changes)

    def delete(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def _purge_locked(self) -> None:
        now = self._clock()
        for sid in [s for s, (exp, _) in self._data.items() if exp < now]:
            del self._data[sid]


def session_id(request: Request) -> str | None:
    return request.cookies.get(COOKIE_NAME)


def set_session_cookie(response: Response, sid: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        COOKIE_NAME, sid, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )
