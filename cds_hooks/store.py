"""The service's database: evaluation metadata, cards sent, clinicians' feedback and seen JWT ids.

SQLAlchemy 2 (sync engine). SQLite file by default, PostgreSQL by URL, so several replicas share the
``seen_jti`` table and a replayed JWT is refused by all of them.

The hook path's writes (a call's ``jti``, then its evaluation row and cards) go through one writer
thread per store that commits whatever calls are waiting in one transaction (group commit): on
SQLite one connection writes, so concurrent calls never wait on each other's write lock (SQLite's
busy handler sleeps in 1-100 ms steps), and on both databases a batch costs one commit and one
``executemany`` per table instead of one per call. Each caller still waits until its own rows are
committed (``await store.save_evaluation_async(...)``), so nothing is answered before it is stored
and nothing acknowledged can be lost; a call given up at its deadline before its write started is
not written (its answer did not carry those cards). A failed batch is retried row by row, so one
bad row fails only its own call.

What is stored: codes, verdicts, criteria met/missing, units, rule ids, FHIR references, card and
suggestion uuids, feedback outcomes and override codings. What is never stored: note text or
quotes, names, free-text override comments, access tokens, JWTs.

    store = Store("sqlite:///.cds97530/cds97530.sqlite3"); store.create_tables()
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import re
import threading
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool


class Base(DeclarativeBase):
    pass


def _table(model: type[Base]) -> Table:
    """The Core table of a declarative model (SQLAlchemy types ``__table__`` as any FromClause)."""
    return cast(Table, model.__table__)


class EvaluationRow(Base):
    """One hook call that reached the evaluation (non-PHI metadata only)."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hook_instance: Mapped[str] = mapped_column(String(100), index=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(300))
    patient_ref: Mapped[str | None] = mapped_column(String(200))
    encounter_ref: Mapped[str | None] = mapped_column(String(200))
    claim_ref: Mapped[str | None] = mapped_column(String(200))
    order_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    payer: Mapped[str | None] = mapped_column(String(100))
    unit_method: Mapped[str | None] = mapped_column(String(100))
    ruleset_version: Mapped[str | None] = mapped_column(String(100))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    input_issue_count: Mapped[int] = mapped_column(Integer, default=0)
    card_count: Mapped[int] = mapped_column(Integer, default=0)


class CardRow(Base):
    """A card sent to a client; feedback names it by ``uuid``."""

    __tablename__ = "cards"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    service_id: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(300))
    indicator: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(200), index=True)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    line_ref: Mapped[str | None] = mapped_column(String(200))
    suggestions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # uuid -> kind


class FeedbackRow(Base):
    """One feedback item; ``dedupe_key`` makes a re-sent item a no-op."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    card_uuid: Mapped[str] = mapped_column(String(100), index=True)
    service_id: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON, default=list)
    override_system: Mapped[str | None] = mapped_column(String(300))
    override_code: Mapped[str | None] = mapped_column(String(200))
    override_display: Mapped[str | None] = mapped_column(String(300))
    outcome_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeenJtiRow(Base):
    """A JWT id already used; kept until the token expires (plus leeway)."""

    __tablename__ = "seen_jti"

    iss: Mapped[str] = mapped_column(String(300), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True, slots=True)
class RuleRate:
    """Feedback counts for one rule, as printed by ``cds97530 feedback report``.

    ``cards`` counts a rule's card once per visit and line, however often the hook fired for
    that visit (an EHR re-fires on every sign attempt); ``shown`` counts every card sent.
    ``reasons`` are the override reasons chosen, most frequent first."""

    rule: str
    cards: int
    accepted: int
    overridden: int
    shown: int = 0
    reasons: tuple[tuple[str, int], ...] = ()

    @property
    def answered(self) -> int:
        return self.accepted + self.overridden

    @property
    def accept_rate(self) -> float | None:
        return self.accepted / self.answered if self.answered else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.answered if self.answered else None


class UnstorableInputError(ValueError):
    """A value the database cannot hold as sent (too long for its column, NUL, a lone surrogate).
    A permanent error of the caller's input: the HTTP layer answers 400 (or 401 for a JWT id),
    never 503 "retry later". The message names the field, never the value."""


def unstorable_field(table: Any, record: dict[str, Any]) -> str | None:
    """The first string field of ``record`` that ``table`` cannot store, or None.

    Checked before any statement is sent, so PostgreSQL (which refuses NUL and over-long values)
    and SQLite (which refuses lone surrogates) answer the same, and no SQL error is ever logged."""
    for name, value in record.items():
        if not isinstance(value, str):
            continue
        column = table.c.get(name)
        length = getattr(getattr(column, "type", None), "length", None)
        if length is not None and len(value) > length:
            return name
        if (not value.isascii() and _BAD_CHARS.search(value)) or "\x00" in value:
            return name
    return None


_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
MAX_SUGGESTION_ID = 100


def check_feedback_items(items: list[dict[str, Any]], *, service_id: str, client: str) -> None:
    """``UnstorableInputError`` naming the first field of any item the feedback table cannot hold."""
    table = FeedbackRow.__table__
    for item in items:
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        fields = {"card_uuid": item.get("card"), "outcome": item.get("outcome"), "service_id": service_id,
                  "client": client, "override_system": reason.get("system"), "override_code": reason.get("code"),
                  "override_display": reason.get("display")}
        bad = unstorable_field(table, fields)
        for suggestion in item.get("acceptedSuggestions") or []:
            sid = suggestion.get("id") if isinstance(suggestion, dict) else None
            if isinstance(sid, str) and (len(sid) > MAX_SUGGESTION_ID or unstorable_field(table, {"x": sid})):
                bad = bad or "acceptedSuggestions.id"
        if bad:
            raise UnstorableInputError(f"feedback field {bad} is too long or holds characters that cannot be stored")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_MAX_BATCH = 64


@dataclass(eq=False)
class _Write:
    """One queued write: a ``jti`` (result: fresh or not) or an evaluation row with its cards."""

    kind: str  # "jti" | "evaluation"
    params: dict[str, Any]
    cards: list[dict[str, Any]] = field(default_factory=list)
    future: Future[Any] = field(default_factory=Future)
    result: Any = None


class _Writer:
    """The thread that commits queued writes in batches (see the module docstring). Started on the
    first write (and again in a forked child); ``close`` writes what is queued, then stops."""

    def __init__(self, apply: Any) -> None:
        self._apply = apply  # list[_Write] -> None, one transaction; sets each write's result
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, write: _Write) -> Future[Any]:
        if self._closed:  # after dispose (e.g. a call still finishing at shutdown): write it here
            if write.future.set_running_or_notify_cancel():
                self._run_batch([write])
            return write.future
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                    self._queue = queue.SimpleQueue() if self._pid != os.getpid() else self._queue
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._loop, name="cds97530-store-writer", daemon=True)
                    self._thread.start()
        self._queue.put(write)
        return write.future

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 30.0) -> None:
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._queue.put(None)
            thread.join(timeout)

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            # a caller that gave up (its deadline) before the write started is not written
            self._run_batch([w for w in batch if w.future.set_running_or_notify_cancel()])

    def _run_batch(self, batch: list[_Write]) -> None:
        if not batch:
            return
        try:
            self._apply(batch)
        except Exception as exc:  # noqa: BLE001 - reported to each caller; a batch is retried row by row
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for write in batch:
                self._run_batch([write])
            return
        for write in batch:
            write.future.set_result(write.result)


class _Compiled:
    """A statement compiled once for the engine's dialect, with its parameters' bind processors:
    what SQLAlchemy would send, without its per-execution machinery (~0.1 ms a statement)."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        self.names = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        self.processors: dict[str, Any] = {}
        for name in self.names:
            processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def params(self, values: dict[str, Any]) -> Any:
        out = {n: (self.processors[n](values.get(n)) if n in self.processors else values.get(n)) for n in self.names}
        return tuple(out[n] for n in self.names) if self.positional else out


@dataclass
class _FastStatements:
    """The writer's statements on the raw DBAPI connection (SQLite and PostgreSQL).

    The connection is held from one batch to the next (a pool checkout and its reset on return
    cost ~0.3 ms of the writer per call under load, measured with ``wrk``). A held connection that
    died while idle (a database restart) is what ``pool_pre_ping`` would have caught at checkout:
    the batch is run once more on a fresh, pinged connection. Any error gives the connection back
    to the pool, which resets or discards it."""

    jti: _Compiled
    purge: _Compiled
    evaluation: _Compiled
    card: _Compiled
    _raw: Any = None
    _pid: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the writer, or a caller after close

    @classmethod
    def build(cls, store: Store) -> _FastStatements | None:
        dialect = store.engine.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            return None
        seen = _table(SeenJtiRow)
        try:
            return cls(
                jti=_Compiled(store._jti_stmt, dialect),
                purge=_Compiled(delete(seen).where(seen.c.expires_at < bindparam("cutoff", type_=DateTime(timezone=True))),
                                dialect),
                evaluation=_Compiled(insert(_table(EvaluationRow)), dialect),
                card=_Compiled(insert(_table(CardRow)), dialect),
            )
        except Exception:  # noqa: BLE001 - an unusual dialect build: the Core path does the same
            return None

    def apply(self, store: Store, batch: list[_Write]) -> None:
        """The batch in one transaction; a driver error is raised as SQLAlchemy's own exception
        class (``IntegrityError``, ``OperationalError``…), as the Core path would, without its parameters."""
        dbapi_error = store.engine.dialect.loaded_dbapi.Error
        with self._lock:
            try:
                self._apply_held(store, batch)
            except dbapi_error as exc:
                raise DBAPIError.instance(None, None, exc, dbapi_error, hide_parameters=True,
                                          dialect=store.engine.dialect) from exc

    def release(self) -> None:
        """Give the held connection back to the pool (``Store.dispose``, after the writer stopped)."""
        with self._lock:
            raw, self._raw = self._raw, None
            if raw is not None and self._pid == os.getpid():
                raw.close()

    def _apply_held(self, store: Store, batch: list[_Write]) -> None:
        if self._raw is not None and self._pid != os.getpid():
            self._raw = None  # inherited through fork: the parent's, never to be touched here
        held = self._raw is not None
        if not held:
            self._raw, self._pid = store.engine.raw_connection(), os.getpid()
        try:
            self._apply(store, self._raw, batch)
            return
        except BaseException as exc:
            raw, self._raw = self._raw, None
            disconnected = _is_disconnect(store, exc, raw)
            _give_back(raw, dead=disconnected)
            if not (held and disconnected):
                raise
        self._raw, self._pid = store.engine.raw_connection(), os.getpid()  # pinged by the pool
        try:
            self._apply(store, self._raw, batch)
        except BaseException as exc:
            raw, self._raw = self._raw, None
            _give_back(raw, dead=_is_disconnect(store, exc, raw))
            raise

    def _apply(self, store: Store, raw: Any, batch: list[_Write]) -> None:
        now = _utcnow()
        evaluations = [w for w in batch if w.kind == "evaluation"]
        cursor = raw.cursor()
        try:
            for write in batch:
                if write.kind != "jti":
                    continue
                cursor.execute(self.jti.sql, self.jti.params({**write.params, "now": now}))
                write.result = bool(cursor.fetchall())
                store._jti_inserts += 1
                if store._jti_inserts % 500 == 0:
                    cursor.execute(self.purge.sql, self.purge.params({"cutoff": now - timedelta(minutes=10)}))
            if evaluations:
                cursor.executemany(self.evaluation.sql, [self.evaluation.params({**w.params, "created_at": now})
                                                         for w in evaluations])
                cards = [self.card.params({**card, "created_at": now, "evaluation_id": w.params["id"]})
                         for w in evaluations for card in w.cards]
                if cards:
                    cursor.executemany(self.card.sql, cards)
        finally:
            cursor.close()
        raw.commit()


def _give_back(raw: Any, *, dead: bool) -> None:
    """A connection after a failed batch: rolled back and returned to the pool, or, when it is
    gone, discarded at once (the pool's own reset of a dead connection logs a traceback)."""
    if not dead:
        try:
            raw.rollback()
        except Exception:  # noqa: BLE001 - it died after all
            dead = True
    if dead:
        raw.invalidate()
    else:
        raw.close()


def _is_disconnect(store: Store, exc: BaseException, raw: Any) -> bool:
    """True if ``exc`` says the connection itself is gone (the dialect's own test)."""
    dbapi_error = store.engine.dialect.loaded_dbapi.Error
    if not isinstance(exc, dbapi_error):
        return False
    try:
        return bool(store.engine.dialect.is_disconnect(exc, raw.dbapi_connection, None))
    except Exception:  # noqa: BLE001 - a dialect that cannot tell: not a disconnect
        return False


class Store:
    """Thread-safe access to the database; every method is one short transaction (the hook path's
    writes: one per batch of concurrent calls)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._jti_inserts = 0
        self._jti_stmt = self._build_jti_statement()
        self._writer = _Writer(self._apply_writes)
        self._fast = _FastStatements.build(self)

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self._writer.close()  # queued writes are committed first
        if self._fast is not None:
            self._fast.release()
        self.engine.dispose()

    def session(self) -> Session:
        return self._session()

    # --- the writer's transaction -------------------------------------------------------------
    def _apply_writes(self, batch: list[_Write]) -> None:
        """One transaction for a batch: each ``jti`` statement in order (a jti twice in one batch:
        the second is a replay), then one multi-row insert per table for the evaluations. On the
        raw DBAPI connection with statements compiled once (``_FastStatements``), else Core."""
        if self._fast is not None:
            self._fast.apply(self, batch)
            if self._writer.closed:  # a call finishing after dispose: nothing may stay checked out
                self._fast.release()
            return
        now = _utcnow()
        evaluations = [w for w in batch if w.kind == "evaluation"]
        with self.engine.begin() as conn:
            for write in batch:
                if write.kind == "jti":
                    write.result = conn.execute(self._jti_stmt, {**write.params, "now": now}).first() is not None
                    self._jti_inserts += 1
                    if self._jti_inserts % 500 == 0:
                        table = _table(SeenJtiRow)
                        conn.execute(delete(table).where(table.c.expires_at < now - timedelta(minutes=10)))
            if evaluations:
                conn.execute(insert(_table(EvaluationRow)), [{**w.params, "created_at": now} for w in evaluations])
                cards = [{**card, "created_at": now, "evaluation_id": w.params["id"]}
                         for w in evaluations for card in w.cards]
                if cards:
                    conn.execute(insert(_table(CardRow)), cards)

    @staticmethod
    async def _wait(future: Future[Any]) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (e.g. trio): a thread waits instead
            import anyio

            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        return await asyncio.wrap_future(future)

    # --- evaluations and cards ---------------------------------------------------------------
    def save_evaluation(self, evaluation: dict[str, Any], cards: list[dict[str, Any]]) -> None:
        """The evaluation row and its cards in one transaction (shared with concurrent calls)."""
        self._writer.submit(_Write("evaluation", evaluation, cards)).result()

    async def save_evaluation_async(self, evaluation: dict[str, Any], cards: list[dict[str, Any]]) -> None:
        """``save_evaluation`` from the event loop: returns once the rows are committed."""
        await self._wait(self._writer.submit(_Write("evaluation", evaluation, cards)))

    def get_evaluation(self, evaluation_id: str, *, client: str | None = None) -> dict[str, Any] | None:
        """What ``GET /evaluations/{id}`` shows: no patient reference (the SMART page knows its
        patient from the launch, and this read needs only the unguessable id)."""
        with self.session() as session:
            row = session.get(EvaluationRow, evaluation_id)
            if row is None or (client is not None and row.client != client):
                return None  # another EHR's evaluation is not found for this one
            cards = session.scalars(select(CardRow).where(CardRow.evaluation_id == evaluation_id)).all()
            return {
                "id": row.id,
                "createdAt": _aware(row.created_at).isoformat(),
                "hookInstance": row.hook_instance,
                "serviceId": row.service_id,
                "hook": row.hook,
                "encounter": row.encounter_ref,
                "claim": row.claim_ref,
                "orders": list(row.order_refs or []),
                "payer": row.payer,
                "unitMethod": row.unit_method,
                "rulesetVersion": row.ruleset_version,
                "lines": list(row.lines or []),
                "inputIssueCount": row.input_issue_count,
                "cards": [
                    {"uuid": c.uuid, "indicator": c.indicator, "rule": c.rule, "rules": list(c.rules or []),
                     "line": c.line_ref}
                    for c in cards
                ],
            }

    # --- JWT replay ---------------------------------------------------------------------------
    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """Record a JWT id; False if it is already recorded and not expired (a replay).

        One statement (INSERT … ON CONFLICT DO UPDATE … WHERE expired … RETURNING), so two
        replicas racing on the same jti cannot both win. The statement is built once."""
        if unstorable_field(SeenJtiRow.__table__, {"iss": iss, "jti": jti}):
            return False  # a jti the store cannot hold (over 200 characters, NUL) is refused like a replay
        return bool(self._writer.submit(_Write("jti", {"iss": iss, "jti": jti, "expires_at": expires_at})).result())

    async def remember_jti_async(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """``remember_jti`` from the event loop (the writer thread commits it with its batch)."""
        if unstorable_field(SeenJtiRow.__table__, {"iss": iss, "jti": jti}):
            return False
        return bool(await self._wait(self._writer.submit(_Write("jti", {"iss": iss, "jti": jti,
                                                                         "expires_at": expires_at}))))

    def _build_jti_statement(self) -> Any:
        table = _table(SeenJtiRow)
        insert_ = sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert
        stmt = insert_(table).values(iss=bindparam("iss"), jti=bindparam("jti"), expires_at=bindparam("expires_at"))
        return stmt.on_conflict_do_update(
            index_elements=[table.c.iss, table.c.jti],
            set_={"expires_at": stmt.excluded.expires_at},
            where=table.c.expires_at < bindparam("now", type_=DateTime(timezone=True)),
        ).returning(table.c.jti)

    def cards_not_issued(self, uuids: set[str], *, service_id: str, client: str) -> set[str]:
        """The card uuids of ``uuids`` this service did not issue to ``client`` (feedback for them
        is refused: a card the service never sent, or sent to another EHR, must not count)."""
        if not uuids:
            return set()
        with self.session() as session:
            issued = set(session.scalars(select(CardRow.uuid).where(
                CardRow.uuid.in_(list(uuids)), CardRow.service_id == service_id, CardRow.client == client)))
        return uuids - issued

    # --- feedback -----------------------------------------------------------------------------
    def save_feedback(self, items: list[dict[str, Any]], *, service_id: str, client: str) -> tuple[int, int]:
        """Store feedback items; returns (new, duplicates). Free-text comments are not stored."""
        new = dup = 0
        now = _utcnow()
        check_feedback_items(items, service_id=service_id, client=client)  # all or none: before any write
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            accepted = [s["id"] for s in item.get("acceptedSuggestions") or [] if isinstance(s, dict) and "id" in s]
            record = {
                "card_uuid": str(item["card"]),
                "service_id": service_id,
                "client": client,
                "outcome": str(item["outcome"]),
                "accepted_suggestions": accepted,
                "override_system": reason.get("system"),
                "override_code": reason.get("code"),
                "override_display": reason.get("display"),
                "outcome_timestamp": _parse_time(str(item["outcomeTimestamp"])),
            }
            # the key uses the timestamp as sent, so a re-sent item always maps to the same key
            key_src = {**record, "outcome_timestamp": str(item["outcomeTimestamp"])}
            dedupe = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()
            try:
                with self._session.begin() as session:
                    if session.scalar(select(FeedbackRow.id).where(FeedbackRow.dedupe_key == dedupe)) is not None:
                        dup += 1
                        continue
                    session.add(FeedbackRow(dedupe_key=dedupe, received_at=now, **record))
                new += 1
            except IntegrityError:
                dup += 1
        return new, dup

    def _visit_cards(self) -> tuple[dict[tuple[str, str, str], list[str]], dict[str, tuple[str, str | None, Any, int]]]:
        """Cards grouped by (visit, line, rule), and each card's latest feedback (outcome, reason).

        The visit is the evaluation's encounter, else its claim, else the evaluation itself; the
        line is the card's line reference. The latest feedback item of any card of a group
        decides the group's outcome (clients re-send or change their answer)."""
        with self.session() as session:
            cards = session.execute(
                select(CardRow.uuid, CardRow.rules, CardRow.rule, CardRow.line_ref,
                       EvaluationRow.id, EvaluationRow.encounter_ref, EvaluationRow.claim_ref)
                .join(EvaluationRow, EvaluationRow.id == CardRow.evaluation_id)
            ).all()
            fb = session.execute(
                select(FeedbackRow.card_uuid, FeedbackRow.outcome, FeedbackRow.override_code,
                       FeedbackRow.override_display, FeedbackRow.outcome_timestamp, FeedbackRow.id)
                .order_by(FeedbackRow.outcome_timestamp, FeedbackRow.id)
            ).all()
        latest: dict[str, tuple[str, str | None, Any, int]] = {}
        for card_uuid, outcome, code, display, at, row_id in fb:
            latest[card_uuid] = (outcome, display or code, _aware(at), row_id)
        groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for card_uuid, rules, rule, line_ref, eval_id, encounter, claim in cards:
            visit = encounter or claim or f"evaluation:{eval_id}"
            for r in rules or [rule]:
                groups[(visit, line_ref or "", r)].append(card_uuid)
        return groups, latest

    def feedback_rates(self) -> list[RuleRate]:
        """Accept/override counts per rule, each card counted once per visit and line (see
        ``RuleRate``); override reasons per rule."""
        groups, latest = self._visit_cards()
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (_visit, _line, rule), uuids in groups.items():
            c = counts[rule]
            c[0] += 1
            c[3] += len(uuids)
            answers = [latest[u] for u in uuids if u in latest]
            if not answers:
                continue
            outcome, reason, _, _ = max(answers, key=lambda a: (a[2], a[3]))
            if outcome == "accepted":
                c[1] += 1
            elif outcome == "overridden":
                c[2] += 1
                reasons[rule][reason or "no reason given"] += 1
        return [
            RuleRate(rule=r, cards=c[0], accepted=c[1], overridden=c[2], shown=c[3],
                     reasons=tuple(sorted(reasons[r].items(), key=lambda kv: (-kv[1], kv[0]))))
            for r, c in sorted(counts.items())
        ]

    def feedback_by_visit(self) -> list[dict[str, Any]]:
        """One row per visit, line and rule: how often its card was shown and the answer given
        (``accepted``, ``overridden`` with the reason, or ``None``). References, no PHI."""
        groups, latest = self._visit_cards()
        rows = []
        for (visit, line, rule), uuids in sorted(groups.items()):
            answers = [latest[u] for u in uuids if u in latest]
            outcome = reason = None
            if answers:
                outcome, reason, _, _ = max(answers, key=lambda a: (a[2], a[3]))
            rows.append({"visit": visit, "line": line or None, "rule": rule, "shown": len(uuids),
                         "outcome": outcome, "reason": reason if outcome == "overridden" else None})
        return rows


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _utcnow()
    return _aware(parsed)


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        memory = not parsed.database or parsed.database == ":memory:"
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if parsed.database and parsed.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return create_engine(url, pool_pre_ping=True)
