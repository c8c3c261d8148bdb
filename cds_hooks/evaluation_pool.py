"""Evaluations in worker processes, with a deadline that really cuts.

A thread cannot be stopped and holds the interpreter while it evaluates, so a hostile note used to
block ``/healthz`` and every other call of the process, and kept burning CPU after its caller had
given up. Here each evaluation runs in a worker process of a small pool (default: one per core):

- the event loop only pickles the job, waits for the worker's socket to become readable (no thread:
  a reader callback on the loop; a thread only for a job over 64 KB, so the loop never blocks
  writing it) and unpickles the small answer;
- a job still running at the deadline is abandoned: its worker is killed (SIGKILL) at once and a
  fresh one forked in its place, so no CPU is spent on an answer nobody waits for;
- a call that finds no free worker before its deadline never starts;
- each worker has an address-space limit, so a memory bomb ends in ``MemoryError`` in the worker
  (then recycled), not in the service; workers are also recycled after ``max_jobs`` jobs.

    pool = EvaluationPool(size=2, memory_mb=1024)
    evaluation = await pool.evaluate_resources(bundle, lines_from="ServiceRequest")  # the caller's deadline

``size=0`` evaluates in a thread of this process instead (no hard cut; for embedding and tests
that want no child processes). The deadline is the caller's effective anyio deadline (the route's
``fail_after``), or ``default_timeout``.
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import collections
import logging
import os
import pickle
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import anyio

import plugin
from plugin.errors import PluginError

log = logging.getLogger("cds97530.pool")

_READY = "ready"
_WORKER_NICENESS = 5


class EvaluationTimeout(TimeoutError):
    """The evaluation did not finish (or could not start) before the deadline; its worker was killed."""


class EvaluationFailed(RuntimeError):
    """The worker died or the evaluation raised something other than a plugin error (message: the
    exception type only, never its text, which may quote the note)."""


# --- the worker process ---------------------------------------------------------------------------
def evaluate_in_process(bundle: dict[str, Any], *, lines_from: str | None = None, rules_dir: Any = None,
                        **kwargs: Any) -> Any:
    """The evaluation job: the ruleset is named by directory (loaded once per process), not shipped."""
    return plugin.evaluate_resources(bundle, lines_from=lines_from, ruleset=plugin.load_ruleset(rules_dir), **kwargs)


def _burn(seconds: float) -> str:
    """A job that spins the CPU (tests of the deadline cut)."""
    stop = time.process_time() + seconds
    while time.process_time() < stop:
        pass
    return "done"


_WARM_UP_BUNDLE: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "ServiceRequest", "id": "w", "status": "draft", "intent": "order",
                  "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
                  "subject": {"reference": "Patient/w"}, "quantityQuantity": {"value": 2}}},
    {"resource": {"resourceType": "DocumentReference", "id": "w", "status": "current",
                  "subject": {"reference": "Patient/w"},
                  "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(
                      b"Ther act 24 min: sit to stand transfers with verbal cues, to reach the goal of "
                      b"independent toileting. Pt completed 8/10 with CGA. Total timed 24 min.").decode()}}]}},
]}


def _hook_job(*args: Any, **kwargs: Any) -> Any:
    from cds_hooks.hook_job import run_hook_job  # evaluation, cards and the stored summary in one job

    return run_hook_job(*args, **kwargs)


def _jobs() -> dict[str, Any]:
    return {"evaluate_resources": evaluate_in_process, "hook": _hook_job, "ping": os.getpid, "burn": _burn}


_BIG_JOB = 64 * 1024
"""A job pickled larger than this is written to the worker from a thread (the loop must not block
on a full socket buffer while a niced worker drains an 8 MB bundle)."""


def _limit_memory(memory_mb: int) -> None:
    if memory_mb <= 0:
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        current = 0
    limit = current + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main(conn: Connection, memory_mb: int) -> None:
    """Loop of one worker: receive (job, args, kwargs), answer ("ok", value) or ("error", exc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on `serve` stops the parent, which kills us
    try:  # on a busy machine the event loop (health checks, deadlines, small calls) goes first
        os.nice(_WORKER_NICENESS)
    except OSError:
        pass
    try:  # load rule data (and the card wording) before the first call
        from cds_hooks.cards import CardOptions
        from plugin.preload import preload

        preload()  # a fresh worker's first call must not pay for the R4 models and the PDF/RTF readers
        _hook_job(_WARM_UP_BUNDLE, lines_from="ServiceRequest", evaluation_id="warm-up",
                  options=CardOptions(source_label="warm-up", policy_url="https://warm-up.invalid/"))
    except Exception:  # noqa: BLE001 - a failed warm-up shows on the first real call instead
        pass
    _limit_memory(memory_mb)
    jobs = _jobs()
    conn.send((_READY, os.getpid()))
    while True:
        try:
            name, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", jobs[name](*args, **kwargs))
        except PluginError as exc:
            answer = ("error", exc)
        except MemoryError:
            answer = ("fatal", "MemoryError")
        except Exception as exc:  # noqa: BLE001 - reported to the caller by type, worker recycled
            answer = ("fatal", type(exc).__name__)
        try:
            conn.send_bytes(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))  # what conn.send does, minus its Python Pickler
        except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
            conn.send(("fatal", f"unpicklable {type(exc).__name__}"))
        if answer[0] == "fatal":
            return  # a worker that hit MemoryError or a bug starts afresh


# --- the pool -------------------------------------------------------------------------------------
@dataclass
class _Worker:
    process: Any
    conn: Connection
    jobs: int = 0


@dataclass
class PoolStats:
    """Counters for logs, tests and the benchmark."""

    started: int = 0
    killed_at_deadline: int = 0
    recycled: int = 0
    timeouts_waiting: int = 0
    done: int = 0
    in_thread_while_starting: int = 0


@dataclass
class EvaluationPool:
    size: int
    memory_mb: int = 1024
    max_jobs: int = 5000
    default_timeout: float = 1.5
    stats: PoolStats = field(default_factory=PoolStats)

    def __post_init__(self) -> None:
        self._idle: queue.Queue[_Worker] = queue.Queue()  # ready workers only
        self._starting: dict[int, _Worker] = {}  # fd -> worker that has not said "ready" yet
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._started = False
        self._closed = False
        self._ever_ready = threading.Event()
        self._limiter: anyio.CapacityLimiter | None = None
        # callers on an asyncio loop waiting for a free worker, first come first served
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[_Worker]]] = (
            collections.deque())

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (idempotent; also done by the first call). Each is a fresh
        ``python -m cds_hooks.evaluation_pool`` on one end of a socket pair: no fork of a process
        that runs an event loop and threads, and no re-import of the caller's main module. A
        watcher thread moves a worker to the idle queue once it has loaded the rule data."""
        with self._lock:
            if self._started or self.size <= 0:
                return
            self._started = True
        threading.Thread(target=self._watch_starting, name="cds97530-pool-watcher", daemon=True).start()
        for _ in range(self.size):
            self._spawn()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until at least one worker (and, within ``timeout``, all) has loaded (``serve``
        calls it in the lifespan, before listening). True if all are ready."""
        self.start()
        stop = time.monotonic() + timeout
        while time.monotonic() < stop:
            with self._lock:
                if not self._starting:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
            self._workers.clear()
            self._starting.clear()
        for worker in workers:
            self._kill(worker)
        if not self._started:  # no watcher to close the wake-up pair
            self._wake_r.close()
            self._wake_w.close()
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers.values()]

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "cds_hooks.evaluation_pool", str(theirs.fileno()), str(self.memory_mb)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        finally:
            theirs.close()
        worker = _Worker(process=process, conn=Connection(ours.detach()))
        with self._lock:
            self._workers[id(worker)] = worker
            self._starting[worker.conn.fileno()] = worker
        self.stats.started += 1
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _watch_starting(self) -> None:
        try:
            self._watch()
        finally:  # closed: the wake-up pair goes with the watcher (no socket left to the GC)
            self._wake_r.close()
            self._wake_w.close()

    def _watch(self) -> None:
        from multiprocessing.connection import wait

        while not self._closed:
            with self._lock:
                starting = list(self._starting.values())
            try:
                ready = wait([w.conn for w in starting] + [self._wake_r], timeout=1.0)
            except (OSError, ValueError):
                # a pipe closed under us (a worker killed at its deadline, or the pool shutting down):
                # look again at what is still starting, or stop when closed
                continue
            for conn in ready:
                if conn is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                try:
                    with self._lock:
                        worker = self._starting.pop(conn if isinstance(conn, int) else conn.fileno(), None)
                except (OSError, ValueError):
                    continue  # closed meanwhile
                if worker is None:
                    continue
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if isinstance(message, tuple) and message and message[0] == _READY:
                    self._ever_ready.set()
                    self._release(worker)
                else:
                    self._replace(worker, "did not start")

    def _kill(self, worker: _Worker) -> None:
        try:
            worker.process.kill()
            worker.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        worker.conn.close()

    def _replace(self, worker: _Worker, why: str) -> None:
        with self._lock:
            self._workers.pop(id(worker), None)
            closed = self._closed
        self._kill(worker)
        if not closed:
            self._spawn()
        log.info("evaluation worker replaced", extra={"why": why})

    # one job (blocking; runs in a thread) ---------------------------------------------------------
    def run(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], stop: float) -> Any:
        """Run job ``name`` in a worker; ``stop`` is a ``time.monotonic()`` deadline.

        Until the first worker has loaded (an app used without its lifespan, e.g. in tests, in
        its first seconds) the job runs in this thread instead, so a cold start is not a miss."""
        self.start()
        if not self._ever_ready.is_set():
            self.stats.in_thread_while_starting += 1
            return _jobs()[name](*args, **kwargs)
        try:
            worker = self._idle.get(timeout=max(0.0, stop - time.monotonic()))
        except queue.Empty:
            self.stats.timeouts_waiting += 1
            raise EvaluationTimeout("no evaluation worker free before the deadline") from None
        outcome = "fatal"
        try:
            worker.conn.send((name, args, kwargs))
            if not worker.conn.poll(max(0.0, stop - time.monotonic())):
                outcome = "deadline"
                raise EvaluationTimeout("evaluation overran the deadline")
            outcome, value = worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise EvaluationFailed(f"evaluation worker died ({type(exc).__name__})") from None
        finally:
            self._after_job(worker, outcome)
        return self._result(outcome, value)

    def _after_job(self, worker: _Worker, outcome: str, *, replace_in_thread: bool = False) -> None:
        """Back to the idle workers after a clean answer; else killed and replaced."""
        worker.jobs += 1
        if outcome in ("ok", "error") and worker.jobs < self.max_jobs:
            self._release(worker)
            return
        if outcome == "deadline":
            self.stats.killed_at_deadline += 1
        else:
            self.stats.recycled += 1
        if replace_in_thread:  # on the event loop: killing and forking must not block it
            with self._lock:  # out of the pool at once (pids() no longer lists it)
                self._workers.pop(id(worker), None)
            threading.Thread(target=self._replace, args=(worker, outcome), name="cds97530-pool-replace",
                             daemon=True).start()
        else:
            self._replace(worker, outcome)

    def _result(self, outcome: str, value: Any) -> Any:
        self.stats.done += 1
        if outcome == "error":
            raise value
        if outcome == "fatal":
            raise EvaluationFailed(str(value))
        return value

    # free workers ---------------------------------------------------------------------------------
    def _release(self, worker: _Worker) -> None:
        """A free worker goes to the longest-waiting asyncio caller, else to the idle queue (where
        blocking ``run`` callers wait). Safe from any thread."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if future.done():
                    continue  # that caller gave up (deadline)
                try:
                    loop.call_soon_threadsafe(self._hand_over, future, worker)
                except RuntimeError:  # its loop is closed
                    continue
                return
            self._idle.put(worker)

    def _hand_over(self, future: asyncio.Future[_Worker], worker: _Worker) -> None:
        if future.done():  # cancelled between the choice and now: the next waiter gets it
            self._release(worker)
        else:
            future.set_result(worker)

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Worker:
        with self._lock:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                future: asyncio.Future[_Worker] = loop.create_future()
                self._waiters.append((loop, future))
        try:
            return await future
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove((loop, future))
                except ValueError:
                    pass
            if future.done() and not future.cancelled():
                self._release(future.result())  # handed to us just as we gave up
            raise

    # one job on the event loop (no thread) ---------------------------------------------------------
    async def _call_on_loop(self, loop: asyncio.AbstractEventLoop, name: str, args: tuple[Any, ...],
                            kwargs: dict[str, Any], timeout: float) -> Any:
        """Send the job, then wait for the worker's socket with a reader callback. Cancelled by the
        caller's deadline (or ``timeout``): the worker is killed and replaced from a thread."""
        # plain pickle (what the worker's recv loads): multiprocessing's ForkingPickler is a Python-level
        # Pickler writing to a BytesIO, then copied: 11 ms for a 7 MB bundle on the loop against 1.6 ms
        data = pickle.dumps((name, args, kwargs), pickle.HIGHEST_PROTOCOL)
        outcome, value = "fatal", None
        worker: _Worker | None = None
        try:
            with anyio.fail_after(timeout) as scope:
                worker = await self._acquire(loop)
                try:
                    answer: asyncio.Future[tuple[str, Any]] = loop.create_future()
                    if len(data) > _BIG_JOB:
                        await anyio.to_thread.run_sync(worker.conn.send_bytes, data, abandon_on_cancel=True)
                    else:
                        worker.conn.send_bytes(data)
                    fd = worker.conn.fileno()
                    loop.add_reader(fd, self._read_answer, worker, answer)
                    try:
                        outcome, value = await answer
                    finally:
                        loop.remove_reader(fd)
                except (EOFError, OSError) as exc:
                    outcome = "fatal"
                    raise EvaluationFailed(f"evaluation worker died ({type(exc).__name__})") from None
                except BaseException:
                    outcome = "deadline"  # cancelled: nobody waits for this answer any more
                    raise
                finally:
                    self._after_job(worker, outcome, replace_in_thread=True)
        except TimeoutError:
            if worker is None:
                self.stats.timeouts_waiting += 1
            if scope.cancel_called:  # our own bound (no caller deadline), not the caller's
                raise EvaluationTimeout("evaluation overran the deadline" if worker is not None
                                        else "no evaluation worker free before the deadline") from None
            raise
        except BaseException:
            if worker is None:  # the caller's deadline passed while no worker was free
                self.stats.timeouts_waiting += 1
            raise
        return self._result(outcome, value)

    @staticmethod
    def _read_answer(worker: _Worker, answer: asyncio.Future[tuple[str, Any]]) -> None:
        if answer.done():
            return
        try:
            message = worker.conn.recv()
        except (EOFError, OSError) as exc:
            answer.set_exception(exc)
        except Exception as exc:  # noqa: BLE001 - an answer that does not unpickle
            answer.set_result(("fatal", f"unreadable answer {type(exc).__name__}"))
        else:
            answer.set_result(message)

    # the async API --------------------------------------------------------------------------------
    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        remaining = anyio.current_effective_deadline() - anyio.current_time()
        if remaining == float("inf") or remaining != remaining:
            remaining = self.default_timeout
        if self.size <= 0:
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(2)
            job = _jobs()[name]
            return await anyio.to_thread.run_sync(partial(job, *args, **kwargs), abandon_on_cancel=True,
                                                  limiter=self._limiter)
        self.start()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another async library: a thread sleeps on the pipe instead
            loop = None
        if loop is not None and self._ever_ready.is_set():
            # plus a hair, so the caller's own deadline fires first and answers
            return await self._call_on_loop(loop, name, args, kwargs, max(0.0, remaining) + 0.05)
        # The thread sleeps on the pipe until the result or the deadline (plus a hair, so the
        # caller's own deadline fires first and answers; the worker is killed 50 ms later).
        stop = time.monotonic() + max(0.0, remaining) + 0.05
        return await anyio.to_thread.run_sync(self.run, name, args, kwargs, stop, abandon_on_cancel=True)

    async def evaluate_resources(self, bundle: dict[str, Any], **kwargs: Any) -> Any:
        return await self.call("evaluate_resources", bundle, **kwargs)

    async def hook(self, bundle: dict[str, Any], **kwargs: Any) -> Any:
        """Evaluation, cards and the stored summary (``cds_hooks.hook_job.run_hook_job``) in one job."""
        return await self.call("hook", bundle, **kwargs)


# --- one pool per process and configuration (apps made by tests share it) -------------------------
_SHARED: dict[tuple[int, int, int], EvaluationPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(size: int | None, *, memory_mb: int = 1024, max_jobs: int = 5000,
                default_timeout: float = 1.5) -> EvaluationPool:
    """The process's pool for this configuration (``size`` None: one worker per core)."""
    n = (os.cpu_count() or 1) if size is None else size
    key = (n, memory_mb, max_jobs)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool._closed:
            pool = EvaluationPool(size=n, memory_mb=memory_mb, max_jobs=max_jobs, default_timeout=default_timeout)
            _SHARED[key] = pool
        return pool


@atexit.register
def _close_shared() -> None:
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()


if __name__ == "__main__":  # a worker: python -m cds_hooks.evaluation_pool FD MEMORY_MB
    worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]))
