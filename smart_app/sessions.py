"""Server-side session stores: the browser only ever holds an opaque, random session id.

The launch state (``state``, PKCE verifier), the access token and the launch context live here,
never in a cookie, URL or page. The cookie is HttpOnly and SameSite=Lax (the callback is a top-level
redirect from the authorization server, which Lax allows), Secure on https.

* :class:`SqlSessionStore` — production: a ``smart_sessions`` table in the configured database
  (SQLite or PostgreSQL), so any replica behind the load balancer can serve the callback and the
  page. The row key is the SHA-256 of the cookie value, so a copy of the table opens no session.
  The table is created at startup (``create_tables``) or by ``cds97530 db upgrade``.
* :class:`SessionStore` — in memory, one process (tests, a single-process demo).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "cds97530_smart_sid"


class Sessions(Protocol):
    """What the app needs of a session store (blocking calls: run them in a threadpool)."""

    def create(self, data: dict[str, Any] | None = None) -> str: ...
    def get(self, sid: str | None) -> dict[str, Any] | None: ...
    def update(self, sid: str, **changes: Any) -> None: ...
    def delete(self, sid: str) -> None: ...


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


def set_session_cookie(response: Response, sid: str, *, secure: bool, max_age: int, framed: bool = False) -> None:
    """HttpOnly, host-only. SameSite=Lax, unless the page is meant to sit in an EHR's iframe on
    another site (``framed``, over https): then a Lax cookie would never come back from inside the
    frame, so it is ``SameSite=None; Secure; Partitioned`` (CHIPS: kept per embedding site, so
    the EHR's frame gets its own session and no other site can ride on it)."""
    if framed and secure:
        response.set_cookie(COOKIE_NAME, sid, max_age=max_age, httponly=True, samesite="none", secure=True, path="/")
        # Python < 3.14's cookie writer has no Partitioned attribute: add it to the header just set
        name, value = response.raw_headers[-1]
        response.raw_headers[-1] = (name, value + b"; Partitioned")
        return
    response.set_cookie(
        COOKIE_NAME, sid, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


METADATA = sa.MetaData()
SMART_SESSIONS = sa.Table(
    "smart_sessions",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the cookie value
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)
"""Kept identical to migration ``0002_smart_sessions`` of ``cds97530 db upgrade``."""


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()


class SqlSessionStore:
    """Sessions in a SQL table shared by every replica.

    >>> store = SqlSessionStore("sqlite://", ttl_seconds=60)
    >>> sid = store.create({"step": "launched"})
    >>> store.get(sid)["step"]
    'launched'
    """

    PURGE_EVERY = 200

    def __init__(self, url: str | Engine, ttl_seconds: int = 3600, *, create_tables: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = url if isinstance(url, Engine) else _engine(url)
        self._ttl = ttl_seconds
        self._clock = clock
        self._creates = 0
        if create_tables:
            METADATA.create_all(self._engine, checkfirst=True)

    def create(self, data: dict[str, Any] | None = None) -> str:
        sid = secrets.token_urlsafe(32)  # 256 bits
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(SMART_SESSIONS.insert().values(id=_key(sid), expires_at=now + self._ttl,
                                                        data=json.dumps(dict(data or {}))))
            self._creates += 1
            if self._creates % self.PURGE_EVERY == 1:
                conn.execute(SMART_SESSIONS.delete().where(SMART_SESSIONS.c.expires_at < now))
        return sid

    def get(self, sid: str | None) -> dict[str, Any] | None:
        if not sid or len(sid) > 200:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(SMART_SESSIONS.c.data).where(
                SMART_SESSIONS.c.id == _key(sid), SMART_SESSIONS.c.expires_at >= self._clock())).first()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row[0])
        return data

    def update(self, sid: str, **changes: Any) -> None:
        key = _key(sid)
        with self._engine.begin() as conn:
            query = sa.select(SMART_SESSIONS.c.data).where(SMART_SESSIONS.c.id == key)
            if self._engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return
            data = json.loads(row[0])
            data.update(changes)
            conn.execute(SMART_SESSIONS.update().where(SMART_SESSIONS.c.id == key).values(data=json.dumps(data)))

    def delete(self, sid: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(SMART_SESSIONS.delete().where(SMART_SESSIONS.c.id == _key(sid)))

    def dispose(self) -> None:
        self._engine.dispose()


def _engine(url: str) -> Engine:
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import StaticPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = not parsed.database or parsed.database == ":memory:"
        if parsed.database and not memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                                poolclass=StaticPool if memory else None)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return sa.create_engine(url, pool_pre_ping=True)
