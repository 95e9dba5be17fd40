"""``partner-hub serve --workers N``: a small supervisor of N worker processes.

Each worker slot has a listening socket of its own on the one port (``SO_REUSEPORT``: the
kernel spreads incoming connections between the slots by their address hash). The supervisor
binds and listens on them before any worker starts, so a bind error shows at once, port 0
works, and a slot whose worker died keeps queueing its connections for the worker that
replaces it instead of refusing or resetting them (a worker that binds its own socket takes
its queue with it when it dies).

SIGTERM or SIGINT to the supervisor: it closes its copies of the sockets, forwards SIGTERM to
every worker (each stops gracefully, graph/serving.py) and exits 0 once all of them have
exited 0. Workers run in their own session, so a terminal's Ctrl-C reaches them once, through
the supervisor (uvicorn takes a second SIGINT as "force quit"); a worker whose supervisor is
killed stops by itself. A worker that exits on its own is restarted in its slot; one that keeps
dying early (five times in a row within ``EARLY_EXIT_SECONDS``) stops the server with status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from graph.serving import listening_socket

log = logging.getLogger("partner_hub.supervisor")

EARLY_EXIT_SECONDS = 10.0
MAX_EARLY_EXITS = 5
BACKLOG = 2048


@dataclass
class Slot:
    """One worker's socket, its current process and its restart history."""

    sock: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    early_exits: int = 0
    restart_at: float = 0.0


class Supervisor:
    def __init__(
        self, app: str, *, host: str, port: int, workers: int, factory: bool = False
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.workers = workers
        self.factory = factory
        self.stopping = False
        self.slots: list[Slot] = []

    # --- signals -----------------------------------------------------------------------------

    def _stop(self, sig: int, _frame: FrameType | None) -> None:
        self.stopping = True

    # --- workers -----------------------------------------------------------------------------

    def _command(self, fd: int) -> list[str]:
        command = [sys.executable, "-m", "graph.serving", self.app, "--fd", str(fd)]
        command += ["--supervisor", str(os.getpid())]
        return [*command, "--factory"] if self.factory else command

    def _environment(self) -> dict[str, str]:
        # The workers import the very code the supervisor runs (a checkout, or the install).
        root = str(Path(__file__).resolve().parent.parent)
        paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def _start(self, slot: Slot) -> None:
        fd = slot.sock.fileno()
        slot.process = subprocess.Popen(
            self._command(fd), pass_fds=[fd], env=self._environment(), start_new_session=True
        )
        slot.started = time.monotonic()

    def _reap(self, slot: Slot) -> bool:
        """Whether the server must stop: the slot's worker exited and keeps dying early."""
        process = slot.process
        if process is None or process.poll() is None:
            return False
        now = time.monotonic()
        early = now - slot.started < EARLY_EXIT_SECONDS
        slot.early_exits = slot.early_exits + 1 if early else 0
        log.warning(
            "worker exited; restarting it",
            extra={"event": "worker_exited", "pid": process.pid, "status": process.returncode},
        )
        slot.process = None
        if slot.early_exits >= MAX_EARLY_EXITS:
            log.error("a worker keeps exiting at start-up: stopping", extra={"event": "crash_loop"})
            return True
        slot.restart_at = now + (0.0 if not early else min(5.0, 0.2 * 2**slot.early_exits))
        return False

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        from db.settings import get_settings
        from graph.logging import configure_logging

        settings = get_settings()
        configure_logging(settings.log_level)
        first = listening_socket(self.host, self.port, reuse_port=True)
        port = int(first.getsockname()[1])
        socks = [first] + [
            listening_socket(self.host, port, reuse_port=True) for _ in range(self.workers - 1)
        ]
        for sock in socks:
            sock.listen(BACKLOG)
        self.slots = [Slot(sock) for sock in socks]
        handlers = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        failed = False
        try:
            for slot in self.slots:
                self._start(slot)
            while not self.stopping:
                for slot in self.slots:
                    if self._reap(slot):
                        failed = True
                        self.stopping = True
                    elif slot.process is None and time.monotonic() >= slot.restart_at:
                        self._start(slot)
                time.sleep(0.1)
            return self._shutdown(settings.shutdown_grace) or int(failed)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.kill()

    def _shutdown(self, grace: float) -> int:
        """Stop every worker gracefully; 0 when each exited 0."""
        for slot in self.slots:
            slot.sock.close()  # the workers' copies stay open until each stops accepting
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 10.0
        status = 0
        for process in running:
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            status = status or int(code != 0)
        return status
