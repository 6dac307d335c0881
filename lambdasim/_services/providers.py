"""The ``binary``, ``embedded`` and ``url`` providers (``docker`` lives in its own module)."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urlsplit

from lambdasim._errors import ServiceError
from lambdasim._services import Endpoint, ProviderUnavailable
from lambdasim._services.probe import flush, free_port, wait_until_ready

log = logging.getLogger("lambdasim")

INSTALL_HINT = {
    "redis": "install it: apt-get install -y redis-server (Debian/Ubuntu) or brew install redis",
    "memcached": "install it: apt-get install -y memcached (Debian/Ubuntu) or brew install memcached",
    "aws": "install it: pip install 'moto[server]'",
}


class _Launcher:
    """Starts every server process from one long-lived thread.

    PR_SET_PDEATHSIG (set through ``setpriv --pdeathsig``) fires when the *thread*
    that forked a child exits; forking from this thread, which lives as long as the
    process, means servers die with the test process, even if it is SIGKILLed, and
    never earlier.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lambdasim-launcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job, reply = self._jobs.get()
            try:
                reply.put((True, job()))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                reply.put((False, e))

    def call(self, job: Callable[[], Any]) -> Any:
        reply: queue.Queue[Any] = queue.Queue()
        self._jobs.put((job, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value


_launcher: _Launcher | None = None
_launcher_lock = threading.Lock()


def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _launch(argv: list[str], log_file: IO[bytes], cwd: str | None, as_nobody: bool = False) -> subprocess.Popen[bytes]:
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = _Launcher()
    setpriv = _setpriv()
    # setpriv changes the user first and sets the parent-death signal last: a change
    # of user would clear it, which is why memcached's own "-u nobody" is not used.
    user = ["--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    full = [setpriv, *user, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv
    proc: subprocess.Popen[bytes] = _launcher.call(lambda: subprocess.Popen(
        full, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd,
        start_new_session=True))
    return proc


def _remove_stale_dirs(kind: str) -> None:
    # Data folders of runs that were killed before they could remove them.
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"lambdasim-{kind}-*")):
        try:
            pid = int(os.path.basename(path).split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(path, ignore_errors=True)


class BinaryProvider:
    """A server binary found on PATH, on a free 127.0.0.1 port, with its own data folder."""

    name = "binary"

    def __init__(self, kind: str, executable: str | None = None) -> None:
        self.kind = kind
        default = {"redis": "redis-server", "memcached": "memcached", "aws": "moto_server"}[kind]
        found = shutil.which(executable or default)
        if found is None:
            raise ProviderUnavailable(f"{executable or default} is not on PATH; {INSTALL_HINT[kind]}")
        self.executable = found
        # The default moto_server runs as moto_app when this Python has moto; a given executable runs as is.
        self._serialized_moto = kind == "aws" and executable is None and importlib.util.find_spec("moto") is not None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - anonymous, closed in close()
        self._dir: str | None = None

    def _argv(self) -> list[str]:
        port = str(self.port)
        if self.kind == "redis":
            assert self._dir is not None
            return [self.executable, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", self._dir, "--daemonize", "no"]
        if self.kind == "memcached":
            # memcached refuses to run as root; without setpriv it drops to nobody itself.
            user = ["-u", "nobody"] if os.geteuid() == 0 and _setpriv() is None else []
            return [self.executable, "-l", "127.0.0.1", "-p", port, "-U", "0", *user]
        if self._serialized_moto:
            # moto_server's own code, with requests taking turns (see moto_app: moto takes no locks).
            return [sys.executable, "-m", "lambdasim._services.moto_app", "-H", "127.0.0.1", "-p", port]
        return [self.executable, "-H", "127.0.0.1", "-p", port]

    def start(self) -> Endpoint:
        if self._proc is not None and self._proc.poll() is None:
            return Endpoint("127.0.0.1", self.port)
        if self.kind == "redis":  # the only one that may write files
            _remove_stale_dirs(self.kind)
            self._dir = tempfile.mkdtemp(prefix=f"lambdasim-{self.kind}-{os.getpid()}-")
        if not self.port:
            self.port = free_port()
        self._log.seek(0)
        self._log.truncate()
        self._proc = _launch(self._argv(), self._log, self._dir,
                             as_nobody=self.kind == "memcached" and os.geteuid() == 0)
        endpoint = Endpoint("127.0.0.1", self.port)
        proc = self._proc
        ready = wait_until_ready(self.kind, endpoint, 30.0, lambda: proc.poll() is None)
        if self._dir is not None:
            # Redis has moved into its data folder; with persistence off it never writes
            # there, so the folder can go now and nothing is left even if we are killed.
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if not ready:
            code = proc.poll()
            self.stop()
            raise ServiceError(
                f"{self.kind}: {self.executable} did not answer on {endpoint.host}:{endpoint.port} "
                + (f"(it exited with status {code})" if code is not None else "within 30 s")
                + f". Its log ends with:\n{self.log_tail()}\nHint: is the port taken, or the binary broken? "
                "Try provider='embedded' or 'docker'.")
        return endpoint

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused server must be able to die
            proc.kill()
        proc.wait(10)

    def pause(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        self._log.seek(0)
        return "\n".join(self._log.read().decode("utf-8", "replace").splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class EmbeddedProvider:
    """In-process servers: moto's server application (requests taking turns, see moto_app), fakeredis' TCP server."""

    name = "embedded"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "memcached":
            raise ProviderUnavailable(
                f"memcached has no embedded server in Python; {INSTALL_HINT['memcached']}, "
                "or use provider='docker'")
        module = "moto.server" if kind == "aws" else "fakeredis"
        try:
            __import__(module)
        except ImportError:
            package = "moto[server]" if kind == "aws" else "fakeredis"
            raise ProviderUnavailable(f"{module} is not installed; pip install '{package}'") from None
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._started_before = False

    def start(self) -> Endpoint:
        if self._server is not None:
            return Endpoint("127.0.0.1", self.port)
        if not self.port:
            self.port = free_port()
        if self.kind == "aws":
            from lambdasim._services.moto_app import threaded_server

            moto = threaded_server("127.0.0.1", self.port)
            self._thread = threading.Thread(target=moto.serve_forever, name="lambdasim-moto", daemon=True)
            self._thread.start()
            self._server = moto
        else:
            import fakeredis

            class _Server(fakeredis.TcpFakeServer):
                allow_reuse_address = True
                daemon_threads = True

            fake = _Server(("127.0.0.1", self.port), server_type="redis")
            self._thread = threading.Thread(target=fake.serve_forever, name="lambdasim-fakeredis", daemon=True)
            self._thread.start()
            self._server = fake
        endpoint = Endpoint("127.0.0.1", self.port)
        if not wait_until_ready(self.kind, endpoint, 30.0, lambda: True):
            self.stop()
            raise ServiceError(f"{self.kind}: the embedded server did not answer on 127.0.0.1:{self.port}.")
        if self._started_before:
            # moto keeps its state in this process across server restarts; a restarted
            # server must come back empty, like a replaced node.
            flush(self.kind, endpoint)
        self._started_before = True
        return endpoint

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        return "(in-process server: its messages go to this process's logging)"

    def close(self) -> None:
        self.stop()


ENV_URL = {"aws": "AWS_ENDPOINT_URL", "redis": "REDIS_URL", "memcached": "MEMCACHED_URL"}


def configured_url(kind: str, url: str | None) -> str | None:
    """The URL given for ``kind``, else the one in the usual environment variable."""
    return url or os.environ.get(ENV_URL[kind]) or None


class UrlProvider:
    """A server the user already runs (e.g. a CI service container)."""

    name = "url"

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        found = configured_url(kind, url)
        if not found:
            raise ProviderUnavailable(f"no URL given for {kind} and {ENV_URL[kind]} is not set")
        parts = urlsplit(found if "://" in found else f"tcp://{found}")
        default_port = {"aws": 80, "redis": 6379, "memcached": 11211}[kind]
        self.url = found
        self.endpoint = Endpoint(parts.hostname or "127.0.0.1", parts.port or default_port)

    def start(self) -> Endpoint:
        if not wait_until_ready(self.kind, self.endpoint, 10.0, lambda: True):
            raise ServiceError(f"{self.kind}: nothing answers at {self.url}. Hint: is the server running, and "
                               f"is {ENV_URL[self.kind]} right?")
        return self.endpoint

    def stop(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        return f"(a server lambdasim does not run: {self.url})"

    def close(self) -> None:
        pass
