"""A TCP proxy on 127.0.0.1 that fails the way networks and stuck servers do, switchable at run time.

Modes (`proxy.mode = ...`, effective at once, for new and existing connections):

- "pass": bytes flow both ways.
- "reset": every connection is cut: new ones right after accept, existing ones at the switch.
- "hold": a silent peer that ACKs everything and answers nothing: new connections are accepted
  and never reach the server; existing ones stop forwarding but keep reading (so neither side's
  TCP sees a problem). Switching to "hold" with pooled connections is a network partition.

`proxy.hold_after(n)` switches to "hold" once n more bytes went from clients to the server: a
partition in the middle of a statement (a bulk COPY). Connections that were held stay held (their byte streams are cut mid-message); leaving "hold"
closes them.
"""
from __future__ import annotations

import socket
import struct
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:<port> to `upstream` (host, port) according to `mode`."""

    MODES = ("pass", "reset", "hold")

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._mode = "pass"
        self.changed_at = time.monotonic()  # of the last switch of mode
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self.accepted = 0
        self._hold_after: int | None = None  # client bytes still to forward before "hold"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="faultproxy")

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for p in pairs:
            p.close()
        self._thread.join(5)

    @property
    def mode(self) -> str:
        """The mode in force."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in self.MODES, mode
        with self._lock:
            self._mode = mode
            self.changed_at = time.monotonic()
            pairs = list(self._pairs)
        for p in pairs:
            if mode == "reset" or (mode == "pass" and p.held):
                p.close()
            elif mode == "hold":
                p.held = True

    def hold_after(self, nbytes: int) -> None:
        """Switch to "hold" once `nbytes` more bytes went from clients to the server."""
        with self._lock:
            self._hold_after = nbytes

    def _sent(self, nbytes: int) -> None:
        with self._lock:
            if self._hold_after is None:
                return
            self._hold_after -= nbytes
            if self._hold_after > 0:
                return
            self._hold_after = None
        self.mode = "hold"

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            mode = self._mode
            if mode == "reset":
                _reset(client)
                continue
            pair = _Pair(client, None if mode == "hold" else self.upstream, self)
            with self._lock:
                self._pairs.append(pair)
            pair.start()

    def _forget(self, pair: "_Pair") -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)


class _Pair:
    """A client connection and (unless accepted in "hold") its upstream connection, pumped by two threads."""

    def __init__(self, client: socket.socket, upstream: tuple[str, int] | None, proxy: FaultProxy):
        self.client, self.proxy = client, proxy
        self.held = upstream is None
        self.server = socket.create_connection(upstream) if upstream else None
        self._closed = False

    def start(self) -> None:
        threading.Thread(target=self._pump, args=(self.client, self.server), daemon=True).start()
        if self.server is not None:
            threading.Thread(target=self._pump, args=(self.server, self.client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if src is self.client:
                    self.proxy._sent(len(data))
                if not self.held and dst is not None:
                    dst.sendall(data)  # held: read (the kernel ACKs) and dropped
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Cut both sides (RST), waking the pump threads."""
        if self._closed:
            return
        self._closed = True
        for s in (self.client, self.server):
            if s is not None:
                _reset(s)
        self.proxy._forget(self)


def _reset(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
    except OSError:
        pass
    s.close()
