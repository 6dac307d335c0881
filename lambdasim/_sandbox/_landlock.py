"""Landlock: the kernel's unprivileged sandbox, over its three system calls (Linux 5.13+).

:func:`restrict` puts the calling thread, and every process it starts afterwards, into a
Landlock domain made from a :class:`Policy`: reads only below the read-only (and
executable) paths, writes only below the read-write ones, optionally no TCP bind or
connect, no signals and abstract Unix sockets to processes outside the domain. Every
access right the running kernel's ABI knows is handled, so what the policy does not
allow is denied; a domain cannot be left or widened, only narrowed further.

It applies to the calling thread only (threads started before keep their freedom): a
process must call it before it starts any other thread. Descriptors opened before stay
usable. The module imports everywhere; :func:`abi` is 0 where Landlock is missing (not
Linux, an old kernel, Landlock disabled at boot, a seccomp filter that refuses it).

No third-party binding: ``landlock`` (PyPI, alpha) knows neither network rules nor scopes;
``landlockpy`` (0.2, ten weeks old) does, but loads libc late through
``ctypes.util.find_library`` (a subprocess, and a ``ctypes.dlopen`` the fakefs sandbox's
audit hook refuses) and opens paths through ``os``, which pyfakefs may have replaced.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posix
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LATEST_ABI", "LandlockError", "LandlockUnavailable", "Policy", "abi", "restrict", "unavailable_reason"]

LATEST_ABI = 7
"""The newest ABI this module knows; :func:`restrict` handles what it and the kernel both know."""

# The same on every architecture but alpha: x86_64 and aarch64 share them.
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (linux/landlock.h), with the ABI that introduced each.
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: link or rename into another directory
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5: ioctl on device files
_FS_BY_ABI = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}
# The only rights a rule on a file (not a directory) may carry: anything else is EINVAL.
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

# Network rights (ABI 4) and scopes (ABI 6).
BIND_TCP = 1 << 0
CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

_READ = READ_FILE | READ_DIR
# Read-write: everything but executing and devices. A new device node (root has CAP_MKNOD)
# would open the device itself with the write access the directory grants.
_WRITE = ((1 << 16) - 1) & ~(EXECUTE | MAKE_CHAR | MAKE_BLOCK | IOCTL_DEV)


class LandlockError(OSError):
    """A Landlock domain could not be set up (``errno`` says why, when the kernel did)."""


class LandlockUnavailable(LandlockError):
    """This system has no Landlock (see :func:`unavailable_reason`)."""


class _RulesetAttr(ctypes.Structure):
    # Its size tells the kernel which fields we know: pass only those of the running ABI.
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


# Loaded at import: in the fakefs sandbox this runs in the zygote, before any audit hook
# refuses ctypes.dlopen, and costs each runtime nothing. CDLL(None) is the interpreter's
# own libc (no find_library, which runs a subprocess).
_libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
if _libc is not None:
    _libc.syscall.restype = ctypes.c_long
    _libc.prctl.restype = ctypes.c_int
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _syscall(number: int, *args: int | ctypes.c_void_p) -> int:
    """``syscall(2)``; raises :class:`OSError` with the errno on failure."""
    assert _libc is not None
    # Every argument as a full machine word: syscall(2) reads them as longs through varargs.
    words = [a if isinstance(a, ctypes.c_void_p) else ctypes.c_long(a) for a in args]
    result = int(_libc.syscall(ctypes.c_long(number), *words))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _probe() -> tuple[int, str]:
    """The kernel's Landlock ABI version, or 0 and why there is none."""
    if _libc is None:
        return 0, f"Landlock is Linux's; this is {sys.platform}"
    try:
        return _syscall(_SYS_CREATE_RULESET, ctypes.c_void_p(None), 0, _CREATE_RULESET_VERSION), ""
    except OSError as e:
        reasons = {
            errno.ENOSYS: "the kernel has no Landlock (Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK)",
            errno.EOPNOTSUPP: "Landlock is disabled at boot (add landlock to the lsm= kernel parameter)",
            # A seccomp filter (a container's) answers EPERM for calls it does not list.
            errno.EPERM: "a seccomp filter refuses Landlock's system calls (a container's profile?)",
        }
        if e.errno in reasons:
            return 0, reasons[e.errno]
        raise LandlockError(e.errno, f"landlock_create_ruleset (ABI version): {e.strerror}") from None


def abi() -> int:
    """The running kernel's Landlock ABI version (1-7 and up), or 0 where Landlock is missing."""
    return _probe()[0]


def unavailable_reason() -> str:
    """Why :func:`abi` is 0 here, for a log line or a skip; empty where Landlock works."""
    return _probe()[1]


@dataclass(frozen=True)
class Policy:
    """What a Landlock domain lets through; :func:`restrict` denies everything else.

    Paths may be files or directories (a directory's rule covers everything below it);
    paths that do not exist are skipped. ``executable`` paths may be read and executed,
    ``read_write`` ones everything but executing and making device nodes. TCP rules need
    ABI 4 and the scopes ABI 6; an older kernel cannot enforce them (:func:`restrict`
    returns the ABI so the caller can say so).
    """

    read_only: Sequence[str | os.PathLike[str]] = ()
    read_write: Sequence[str | os.PathLike[str]] = ()
    executable: Sequence[str | os.PathLike[str]] = ()
    deny_tcp_bind: bool = True
    deny_tcp_connect: bool = False
    tcp_connect_ports: Sequence[int] = ()
    """Ports still reachable when ``deny_tcp_connect`` (e.g. the services a function may use)."""
    scope_signals: bool = True
    """No signals to processes outside the domain (its own and its children's still work)."""
    scope_abstract_unix: bool = True
    """No connecting to abstract Unix sockets (``"\\0name"``) made outside the domain."""

    def __post_init__(self) -> None:
        for name in ("read_only", "read_write", "executable"):
            if isinstance(getattr(self, name), (str, bytes)):  # a str is a Sequence[str] of its letters
                raise TypeError(f"Policy.{name} is a list of paths, not one path")


def _handled_fs(version: int) -> int:
    return sum(rights for since, rights in _FS_BY_ABI.items() if version >= since)


def _add_path(ruleset: int, path: str, access: int) -> None:
    try:
        # posix, not os: pyfakefs may have replaced os in this module, never posix.
        fd = posix.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there to allow
    except OSError as e:
        raise LandlockError(e.errno, f"cannot open {path!r} for a Landlock rule: {e.strerror}") from None
    try:
        if not stat.S_ISDIR(posix.fstat(fd).st_mode):
            access &= _FILE_RIGHTS
        if not access:
            return
        rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        try:
            _syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.c_void_p(ctypes.addressof(rule)), 0)
        except OSError as e:
            raise LandlockError(e.errno, f"landlock_add_rule({path!r}): {e.strerror}") from None
    finally:
        posix.close(fd)


def restrict(policy: Policy) -> int:
    """Put the calling thread (and what it starts from now on) into a domain made from ``policy``.

    Sets ``PR_SET_NO_NEW_PRIVS`` first (the kernel requires it of an unprivileged caller, and
    a set-user-ID program must not undo the domain). Returns the ABI whose rights were
    handled: the kernel's, at most :data:`LATEST_ABI`. Raises :class:`LandlockUnavailable`
    where :func:`abi` is 0 and :class:`LandlockError` if the kernel refuses a step; the
    thread is unchanged then (but for no_new_privs, if the last step failed).

    Call it before any other thread starts, and in the fakefs sandbox before the audit
    hook, which refuses the ctypes calls and real opens this makes (pyfakefs may be active:
    paths are opened through ``posix``).
    """
    version, why = _probe()
    if not version:
        raise LandlockUnavailable(errno.EOPNOTSUPP, f"Landlock is unavailable: {why}")
    version = min(version, LATEST_ABI)
    handled_fs = _handled_fs(version)
    handled_net = 0
    if version >= 4:
        handled_net = (BIND_TCP if policy.deny_tcp_bind else 0) | (CONNECT_TCP if policy.deny_tcp_connect else 0)
    scoped = 0
    if version >= 6:
        scoped = ((SCOPE_SIGNAL if policy.scope_signals else 0)
                  | (SCOPE_ABSTRACT_UNIX_SOCKET if policy.scope_abstract_unix else 0))
    attr = _RulesetAttr(handled_access_fs=handled_fs, handled_access_net=handled_net, scoped=scoped)
    # A kernel older than a field rejects a larger struct only if the field is set; sending just
    # the known fields keeps E2BIG out of the picture altogether.
    size = 8 if version < 4 else 16 if version < 6 else ctypes.sizeof(attr)
    try:
        ruleset = _syscall(_SYS_CREATE_RULESET, ctypes.c_void_p(ctypes.addressof(attr)), size, 0)
    except OSError as e:
        raise LandlockError(e.errno, f"landlock_create_ruleset: {e.strerror}") from None
    try:
        # Rules add up: a path in two lists gets both lists' rights.
        for paths, access in ((policy.read_only, _READ), (policy.executable, _READ | EXECUTE),
                              (policy.read_write, _WRITE)):
            for path in paths:
                _add_path(ruleset, os.fspath(path), access & handled_fs)
        if handled_net & CONNECT_TCP:
            for port in policy.tcp_connect_ports:
                if not 0 <= port <= 65535:
                    raise LandlockError(errno.EINVAL, f"not a TCP port: {port!r}")
                rule = _NetPortAttr(allowed_access=CONNECT_TCP, port=port)
                try:
                    _syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, ctypes.c_void_p(ctypes.addressof(rule)), 0)
                except OSError as e:
                    raise LandlockError(e.errno, f"landlock_add_rule(TCP port {port}): {e.strerror}") from None
        assert _libc is not None
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise LandlockError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        try:
            _syscall(_SYS_RESTRICT_SELF, ruleset, 0)
        except OSError as e:
            raise LandlockError(e.errno, f"landlock_restrict_self: {e.strerror}") from None
    finally:
        posix.close(ruleset)
    return version
