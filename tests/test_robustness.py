"""Whatever a handler does, ``fn.invoke()`` returns an Invocation within the timeout and the
simulator keeps serving: forged frames on the runtime channel, huge output, odd files in
/tmp, descriptors sent to the host, and processes that hide, stop or ignore signals."""

from __future__ import annotations

import errno
import glob
import marshal
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable

import pytest

import lambdasim
from lambdasim import Simulator
from lambdasim._invoke import LOG_CAP_BYTES
from lambdasim._sandbox._common import wait_reaped
from tests.conftest import Code, namespace_only
from tests.test_leaks import _descendants, _instances, _wait_gone

pytestmark = pytest.mark.sandbox
MakeSim = Callable[..., Simulator]

BOTH_SANDBOXES = True

# The handler finds the runtime's channel among its descriptors (the only Unix socket) and
# writes to it what the event says, before it returns.
FORGER = """
import ctypes

libc = ctypes.CDLL(None, use_errno=True)  # the real descriptors, under the fakefs sandbox too

def handler(event, context):
    if "frame" in event:
        data = bytes.fromhex(event["frame"])
        for fd in range(3, 256):
            libc.send(fd, data, len(data), 0x4000)  # MSG_NOSIGNAL; fails (ENOTSOCK) but on sockets
    return "ok"
"""


def _frame(body: bytes) -> str:
    return (struct.pack("<I", len(body)) + body).hex()


FORGED = {
    "not_marshal": _frame(b"\x00garbage"),
    "wrong_types": _frame(marshal.dumps(("result", 1, 2, 3, 4, 5))),
    "wrong_length": _frame(marshal.dumps(("result",))),
    "wrong_kind": _frame(marshal.dumps(("init", None, 1.0, 1, None))),
    "not_a_tuple": _frame(marshal.dumps({"kind": "result"})),
    "infinite_duration": _frame(marshal.dumps(("result", b"1", None, float("inf"), 1, None))),
    "huge_count": _frame(marshal.dumps(("result", b"1", None, 1.0, 1 << 2000, None))),
    "bad_error": _frame(marshal.dumps(("result", None, {"errorType": 5}, 1.0, 1, None))),
    "huge_frame": struct.pack("<I", 0xFFFFFFF0).hex(),  # a length no runtime sends; no body follows
}


FAKEFS_FDS = ("the fakefs sandbox gives the function Python-level descriptors only: the runtime's channel "
              "and log file are out of its reach (issue 14 hardens fakefs)")


@namespace_only(FAKEFS_FDS)
@pytest.mark.parametrize("forged", sorted(FORGED))
def test_a_forged_frame_ends_the_runtime_as_lambda_would(code: Code, make_sim: MakeSim, forged: str) -> None:
    sim = make_sim()
    fn = sim.deploy("app.handler", code_dir=code(FORGER), timeout_s=3)
    assert fn.invoke({}).payload == "ok"
    started = time.monotonic()
    inv = fn.invoke({"frame": FORGED[forged]})
    assert time.monotonic() - started < 2.5, "ended at once, not by the timeout"
    assert inv.error is not None and inv.error["errorType"] == "Runtime.ExitError"
    assert inv.error["errorMessage"] == f"RequestId: {inv.request_id} Error: Runtime exited with error: signal: killed"
    assert "Runtime.ExitError" in inv.logs
    after = fn.invoke({})
    assert after.payload == "ok" and after.cold_start, "the instance serves on, with a new runtime"


# Module-level code (Init) forges the Init message itself: a pipe as the "log file", and 40
# more descriptors than the protocol's one.
INIT_FORGER = """
import marshal, os, socket, struct

kind = open(os.path.join(os.path.dirname(__file__), "kind.txt")).read()
body = marshal.dumps(("init", None, 1.0, 1, None))
r, w = os.pipe()
fds = [r] if kind == "pipe" else [os.memfd_create("x") for _ in range(41)]
rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
for fd in range(3, 256):
    try:
        chan = socket.socket(fileno=os.dup(fd))
    except OSError:
        continue
    chan.sendmsg([struct.pack("<I", len(body)) + body], rights)

def handler(event, context):
    return "ok"
"""


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@namespace_only(FAKEFS_FDS)
@pytest.mark.parametrize("kind", ["pipe", "many"])
def test_descriptors_a_runtime_sends_are_checked_held_one_at_most_and_closed(
        code: Code, make_sim: MakeSim, kind: str) -> None:
    sim = make_sim()
    warm_up = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return 1\n"), name="plain")
    assert warm_up.invoke({}).ok  # so that the simulator's own descriptors and threads are all there
    warm_up.scale_down(keep=0)
    fn = sim.deploy("app.handler", code_dir=code(INIT_FORGER, files={"kind.txt": kind}), timeout_s=3)
    wait_reaped()  # the warm-up's keeper is waited for on the reaper thread, with a descriptor of its own
    fds, threads = _fds(), _threads()
    for _ in range(5):
        inv = fn.invoke({})
        assert inv.error is not None and inv.error["errorType"] == "Runtime.ExitError"
        fn.scale_down(keep=0)
    wait_reaped()
    assert _fds() == fds, "no descriptor the runtime sent, nor any of an instance, stays open"
    assert _threads() == threads


HAVOC = """
import os, signal, sys, time

def handler(event, context):
    what = event.get("do")
    if what == "close_stdio":
        for fd in (0, 1, 2):
            os.close(fd)
        print("into nothing")
    elif what == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif what == "daemon":
        if os.fork() == 0:
            try:
                os.setsid()
            except OSError:
                pass
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                time.sleep(300)
            os._exit(0)
        os.wait()
    elif what == "sigstop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif what == "exit":
        os._exit(3)
    return "ok"
"""

ENDS = {"close_stdio": "OSError", "ignore_sigterm": None, "daemon": None, "sigstop": "Sandbox.Timedout"}


@pytest.mark.parametrize("what", [pytest.param(w, marks=[namespace_only(FAKEFS_FDS)] if w == "close_stdio" else [])
                                  for w in sorted(ENDS)])
def test_a_handler_that_hides_stops_or_ignores_signals_leaves_nothing_behind(
        code: Code, sandbox_kind: str, what: str) -> None:
    with Simulator(sandbox=sandbox_kind) as sim:
        fn = sim.deploy("app.handler", code_dir=code(HAVOC), timeout_s=2)
        inv = fn.invoke({"do": what})
        expected = ENDS[what]
        assert (inv.error or {}).get("errorType") == expected, inv.logs
        assert fn.invoke({}).payload == "ok", "the simulator serves on"
        pids, instances = _descendants(os.getpid()), _instances(sim)
        fn.scale_down(keep=0)
        fn.invoke({"do": what})  # once more, left for close()
        pids |= _descendants(os.getpid())
        instances |= _instances(sim)
    assert _wait_gone(instances) == set(), "the instances and all their handlers left end with close()"
    lambdasim.shutdown()  # and the helper kept for the next Simulator with its spare
    assert _wait_gone(pids) == set()


LOUD = """
import ctypes, sys

def handler(event, context):
    if event.get("truncate"):
        ctypes.CDLL(None).ftruncate(1, ctypes.c_long(1 << 40))  # the real fd 1, under fakefs too
    else:
        sys.stdout.write("x" * (LOG_CAP + 1000) + "\\n")
    return "ok"
"""


@pytest.mark.parametrize("how", ["written", pytest.param("truncate", marks=namespace_only(FAKEFS_FDS))])
def test_output_is_kept_up_to_a_cap_and_marked_truncated(code: Code, make_sim: MakeSim, how: str) -> None:
    sim = make_sim()
    fn = sim.deploy("app.handler", code_dir=code(LOUD.replace("LOG_CAP", str(LOG_CAP_BYTES))), timeout_s=10)
    started = time.monotonic()
    inv = fn.invoke({"truncate": how == "truncate"})
    assert time.monotonic() - started < 5.0
    assert inv.payload == "ok"
    assert LOG_CAP_BYTES < len(inv.logs) < LOG_CAP_BYTES + 4096
    dropped = (1 << 40) - LOG_CAP_BYTES if how == "truncate" else 1001
    assert f"[lambdasim] output truncated: {dropped} more bytes were written than the {LOG_CAP_BYTES} kept" in inv.logs
    assert fn.invoke({"truncate": False}).ok, "the next invocation's output starts afresh"


ODD_FILES = """
import os, socket

def handler(event, context):
    fifo, sock = f"/tmp/fifo-{event['token']}", f"/tmp/sock-{event['token']}"
    if event.get("unblock"):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        return "unblocked"
    made = []
    os.mkdir("/tmp/d")
    for name, make in [(fifo, lambda: os.mkfifo(fifo)),
                       (sock, lambda: socket.socket(socket.AF_UNIX).bind(sock)),
                       ("/tmp/passwd", lambda: os.symlink("/etc/passwd", "/tmp/passwd")),
                       ("/tmp/d/etc/passwd", lambda: os.symlink("/etc", "/tmp/d/etc")),
                       ("/tmp/sparse", lambda: open("/tmp/sparse", "wb").truncate(1 << 40))]:
        try:
            make()
            made.append(name[len("/tmp/"):])
        except OSError:  # the fakefs sandbox refuses some
            pass
    return made
"""


def _token() -> str:
    """A name part no earlier run used: a FIFO or socket a run left in the host's /tmp must not
    make the next run's handler fail, or hide that its own reached the host."""
    return f"lambdasim-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _on_host(token: str) -> list[str]:
    return sorted(glob.glob(f"/tmp/*{token}*") + glob.glob(f"/*{token}*"))


def test_tmp_view_refuses_fifos_sockets_links_and_sparse_giants_at_once(
        code: Code, make_sim: MakeSim, sandbox_kind: str) -> None:
    sim = make_sim()
    fn = sim.deploy("app.handler", code_dir=code(ODD_FILES))
    token = _token()
    fifo, sock = f"fifo-{token}", f"sock-{token}"
    made = fn.invoke({"token": token}).payload
    if sandbox_kind == "namespace":
        assert made == [fifo, sock, "passwd", "d/etc/passwd", "sparse"]
    else:  # its /tmp is in the runtime's memory: no FIFO, no socket file
        assert "passwd" in made and fifo not in made and sock not in made
    assert _on_host(token) == [], "nothing of the instance's /tmp is made in the host's"
    inst = fn.instances[0]
    outcome: dict[str, BaseException | bytes] = {}

    def read(name: str) -> None:
        try:
            outcome[name] = inst.tmp.read_bytes(name)
        except BaseException as e:  # noqa: BLE001 - the test looks at it
            outcome[name] = e

    for name in made:
        reader = threading.Thread(target=read, args=(name,), daemon=True)
        reader.start()
        reader.join(5.0)
        if reader.is_alive():  # blocked until a writer comes: let one come, then fail
            fn.invoke({"token": token, "unblock": True})
            reader.join(5.0)
            pytest.fail(f"reading /tmp/{name} blocked")
        assert isinstance(outcome[name], OSError), (name, outcome[name])
    if sandbox_kind == "namespace":
        assert "is a FIFO" in str(outcome[fifo]) and inst.tmp.exists(fifo)
        assert "is a socket" in str(outcome[sock])
        assert "sparse" in str(outcome["sparse"])
    assert inst.tmp.exists("passwd")
    assert {"d", *made} - {"d/etc/passwd"} <= set(inst.tmp.listdir())


# The handler makes FIFOs and Unix socket files by every route Python offers, in /tmp and
# elsewhere, and binds an abstract Unix address.
NODES = """
import os, posix, socket, stat

def attempt(make):
    try:
        make()
        return "made"
    except OSError as e:
        return [type(e).__name__, e.errno]

def handler(event, context):
    t = event["token"]
    unix = lambda: socket.socket(socket.AF_UNIX)
    return {
        "fifo": attempt(lambda: os.mkfifo(f"/tmp/fifo-{t}")),
        "posix_fifo": attempt(lambda: posix.mkfifo(f"/tmp/pfifo-{t}")),
        "node_fifo": attempt(lambda: posix.mknod(f"/tmp/nfifo-{t}", stat.S_IFIFO | 0o600)),
        "sock": attempt(lambda: unix().bind(f"/tmp/sock-{t}")),
        "relative_sock": attempt(lambda: unix().bind(f"sock-{t}")),
        "code_fifo": attempt(lambda: os.mkfifo(f"/var/task/fifo-{t}")),
        "abstract": attempt(lambda: unix().bind(f"\\0{t}")),
    }
"""


def test_fifos_and_unix_sockets_stay_in_the_instance(code: Code, make_sim: MakeSim, sandbox_kind: str) -> None:
    fn = make_sim().deploy("app.handler", code_dir=(src := code(NODES)))
    token = _token()
    out = fn.invoke({"token": token}).payload
    in_tmp = ["fifo", "posix_fifo", "node_fifo", "sock"]
    if sandbox_kind == "namespace":
        assert [out[k] for k in in_tmp] == ["made"] * len(in_tmp), out
        assert {f"fifo-{token}", f"sock-{token}"} <= set(fn.instances[0].tmp.listdir())
    else:  # refused, not faked: a FIFO in pyfakefs' memory would read as an empty file
        assert [out[k] for k in in_tmp] == [["SandboxLimitError", None]] * len(in_tmp), out
        assert not [name for name in fn.instances[0].tmp.listdir() if token in name]
    # Lambda's code directory and working directory (/var/task) are read-only.
    assert out["relative_sock"] == out["code_fifo"] == ["OSError", errno.EROFS]
    assert out["abstract"] == "made", "an abstract address makes no file"
    assert _on_host(token) == [] and not list(src.glob(f"*{token}*")), "the host's filesystem gained nothing"
