"""The dispatcher: a thread in each API process that delivers the outbox to webhook subscribers.

Each round it fans new events out into deliveries (store.outbox), then leases the due deliveries
of each subscriber and sends them from a thread pool, at most PER_WEBHOOK at once per subscriber,
so a receiver that hangs holds only its own slots. A round starts when the process wrote events
(`wake`, called by zonechief.reports after the commit) or after POLL_S, which also picks up what
another process or a crashed one left (its leases run out after LEASE).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import urllib3

from store.outbox import Claimed, OutboxRepository, Outcome
from zonechief import webhooks as W

log = logging.getLogger("zonechief.dispatcher")

POLL_S = 1.0
LEASE = timedelta(seconds=15)  # an attempt (at most ~10 s: the 5 s timeout, twice) not recorded by then → tried again
PER_WEBHOOK = 8  # deliveries in flight per subscriber and process
THREADS = 32
MAX_BODY = 65536  # bytes of a receiver's answer read (WeCom's errcode)
HOOKS_TTL_S = 2.0  # a new or removed subscriber is seen within this


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Dispatcher:
    """Delivers events to webhooks in the background; `start`, `wake`, `stop`."""

    def __init__(self, open_repo: Callable[[], OutboxRepository], category_names: Callable[[], dict[str, str]], *,
                 poll_s: float = POLL_S, lease: timedelta = LEASE, per_webhook: int = PER_WEBHOOK,
                 timeout_s: float = W.RECEIVER_TIMEOUT_S):
        self._open_repo, self._category_names = open_repo, category_names
        self.poll_s, self.lease, self.per_webhook, self.timeout_s = poll_s, lease, per_webhook, timeout_s
        self._wake = threading.Event()
        self._fresh = threading.Event()  # events written here since the last fan-out
        self._fanned_at = 0.0
        self._hooks: dict[int, dict] | None = None  # the subscribers, read every HOOKS_TTL_S
        self._hooks_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonechief-dispatcher", daemon=True)
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="zonechief-webhook")
        self._in_flight: Counter[int] = Counter()
        self._outcomes: deque[Outcome] = deque()  # attempts ended, not yet written
        self._lock = threading.Lock()
        # urllib3 rather than httpx here: a third of the CPU per delivery (measured), which decides how many
        # a process delivers per second beside its requests.
        self._client = urllib3.PoolManager(num_pools=64, maxsize=THREADS, retries=False)

    def start(self) -> "Dispatcher":
        """Start delivering."""
        self._thread.start()
        return self

    def wake(self, fresh: bool = True) -> None:
        """Start a round now; `fresh`: this process wrote events, fan them out."""
        if fresh:
            self._fresh.set()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempts under way (their outcome is recorded, or their lease runs out)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.clear()
        try:
            self._record(self._open_repo())
        except Exception as exc:  # the leases run out; the deliveries are tried again
            log.warning("dispatcher: outcomes not written at stop (%s)", type(exc).__name__)

    # -------------------------------------------------------------- rounds
    def _run(self) -> None:
        delay = self.poll_s
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.round()
                delay = self.poll_s
            except Exception as exc:  # the database is down, most likely: try again, less often
                cause = getattr(exc, "orig", None) or exc
                log.warning("dispatcher: %s: %s", type(cause).__name__, (str(cause).splitlines() or [""])[0])
                delay = min(10 * self.poll_s, delay * 2)

    def round(self) -> int:
        """Fan out what is new, then start the due attempts; returns how many were started.

        Fan-out runs when this process wrote events (`wake(fresh=True)`) and every poll otherwise (another
        process's or a crashed one's events); a round after an attempt only starts the next attempts.
        """
        repo = self._open_repo()
        self._record(repo)
        now = time.monotonic()
        if self._fresh.is_set() or now - self._fanned_at >= self.poll_s:
            self._fresh.clear()
            self._fanned_at = now
            while repo.fan_out(W.takes, _now()) == 500:
                pass
        if self._hooks is None or now - self._hooks_at >= HOOKS_TTL_S:
            self._hooks, self._hooks_at = repo.webhooks(), now
        hooks = self._hooks
        started = 0
        for wid in repo.due_webhooks(_now()):
            if wid not in hooks:  # subscribed since the list was read
                hooks = self._hooks = repo.webhooks()
                self._hooks_at = now
            hook = hooks.get(wid)
            with self._lock:
                free = self.per_webhook - self._in_flight[wid]
            if hook is None or free <= 0:
                continue
            for c in repo.claim(wid, _now(), self.lease, free):
                with self._lock:
                    self._in_flight[wid] += 1
                self._pool.submit(self._attempt, wid, hook, c)
                started += 1
        return started

    def _record(self, repo: OutboxRepository) -> None:
        """Write the outcomes of the attempts that ended since the last round. If the database refuses,
        they are kept for the next round; if this process dies first, their leases run out and the
        deliveries are tried again (at least once)."""
        batch = []
        while self._outcomes:
            batch.append(self._outcomes.popleft())
        if not batch:
            return
        try:
            repo.finish_many(batch)
        except BaseException:
            self._outcomes.extendleft(reversed(batch))
            raise

    # -------------------------------------------------------------- one attempt
    def _attempt(self, wid: int, hook: dict, c: Claimed) -> None:
        try:
            status, error, ok = None, None, False
            try:
                data = W.body(hook["kind"], c.event_id, c.payload, self._category_names())
                status, text = self._post(hook["url"], data, W.headers(c.event_id, c.event_type, hook["secret"], data))
                ok = W.accepted(hook["kind"], status, text)
                if not ok:
                    error = f"HTTP {status}: {text[:300]}"
            except Exception as exc:  # unreachable, refused, timed out: all mean "later"
                error = f"{type(exc).__name__}: {exc}"[:500]
            now = _now()
            retry = None if ok else W.next_attempt(c.attempts, c.event_at, now)
            if not ok and retry is None:
                log.warning("webhook %s: event %s dead-lettered after %s attempts (%s)", wid, c.event_id, c.attempts, error)
            # Written by the next round, with the others of its time, in one transaction. After failures, a
            # success also releases the subscriber's deliveries waiting out a backoff.
            self._outcomes.append(Outcome(c.delivery_id, now, ok, status, error, retry, ok and c.attempts > 1))
        finally:
            with self._lock:
                self._in_flight[wid] -= 1
            self._wake.set()  # the outcome is to be written, and the report's next delivery may go

    def _post(self, url: str, data: bytes, headers: dict) -> tuple[int, str]:
        """POST within the receiver timeout, reading at most MAX_BODY of the answer."""
        deadline = time.monotonic() + self.timeout_s
        resp = self._client.request("POST", url, body=data, headers=headers, redirect=False, preload_content=False,
                                    timeout=urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s))
        got, complete = bytearray(), False
        try:
            for chunk in resp.stream(8192):
                got += chunk
                if len(got) >= MAX_BODY:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the receiver did not answer within {self.timeout_s:.0f} s")
            else:
                complete = True
            return resp.status, got[:MAX_BODY].decode("utf-8", "replace")
        finally:
            if complete:
                resp.release_conn()  # back to the pool: the next delivery reuses the connection
            else:
                resp.close()  # an answer too long or too slow: never read the rest
