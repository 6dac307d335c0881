"""The namespace sandbox's network: one network namespace per Simulator, which every instance joins.

``network="isolated"`` (the default) is a function in a VPC without a NAT gateway: the zygote
unshares a network namespace once, before it forks any keeper, with only ``lo`` in it. Nothing
of the host is reachable from there (its listeners, its abstract Unix sockets), nothing in it
from the host, and a connection anywhere else fails at once with the kernel's error
(``ENETUNREACH``, ``ECONNREFUSED``). The simulator's services stay where their environment
variables say: for each 127.0.0.1 endpoint an instance is given, the zygote binds the same
address inside the namespace and hands the listener to a relay process it forked before it left
the host's namespace; the relay accepts there and connects to the same address on the host. A
``udp`` address (the X-Ray daemon's, ``lambdasim._services.xray``) is bound as a UDP socket there, and
the relay sends each datagram on to the same address on the host.

``network="internet"`` adds a user-mode network stack (pasta from passt, else slirp4netns) to
the namespace: outbound connections and DNS work, inbound ones still do not, and the host's
loopback stays out of reach. ``network="host"`` is no namespace at all (the host's network).

An instance whose spec says ``own_network`` (under ``isolated``) gets a network namespace of its own
instead (:meth:`Network.own_namespace`), with ``lo`` up (once one was asked for, the zygote makes
the next one ahead of demand); at the spawn request the spec's ``forward`` addresses are listened on
there and handed to the relay with a pidfd of the instance's keeper; the relay drops those listeners
when that keeper exits, and the kernel removes the namespace with the instance's last process. Only
that instance reaches what listens there (its Runtime API at 127.0.0.1:9001): not the host, not
another instance.

The relay and the stack live in the zygote's PID namespace, of which the zygote is PID 1: when
the zygote ends (the simulator closed it, or died), the kernel kills them with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import time
from typing import Any

from lambdasim import _wire as wire
from lambdasim._sandbox import _linux as L
from lambdasim._wire import Channel, ChannelClosed, fork_with_channel

STACKS = {"pasta": "passt", "slirp4netns": "slirp4netns"}
"""User-mode network stacks for ``network="internet"``, in order of preference, and their Debian packages."""
STACK_ENV = "LAMBDASIM_NETWORK_STACK"
"""Names the stack to use (``pasta`` or ``slirp4netns``) where both are installed."""

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")

# The addresses the stack gives the namespace: slirp4netns' defaults, which pasta is told too.
GUEST_ADDRESS, GATEWAY, DNS_ADDRESS = "10.0.2.100", "10.0.2.2", "10.0.2.3"
_STACK_READY_S = 10.0

OWN_NETWORK_REFUSED = "an instance gets a network namespace of its own (own_network)"
"""How the zygote's answer begins when a spec asks for ``own_network`` where it cannot be given."""


def etc_files(network: str) -> dict[str, str]:
    """The files of an instance's /etc that depend on its network, besides ``_layout.ETC_FILES``."""
    if network == "host":
        return {}  # the host's resolver, reached on the host's network
    if network == "internet":
        return {"resolv.conf": f"nameserver {DNS_ADDRESS}\n"}  # the stack's DNS forwarder
    # Nothing answers on port 53 of the namespace's loopback: a lookup fails at once.
    return {"resolv.conf": "# lambdasim: network=\"isolated\", no DNS\nnameserver 127.0.0.1\noptions attempts:1\n"}


def find_stack() -> list[str] | None:
    """The command line of the user-mode network stack to run (without its target), or None."""
    wanted = os.environ.get(STACK_ENV, "")
    for name in [wanted] if wanted in STACKS else list(STACKS):
        path = shutil.which(name)
        if path is None:
            continue
        if name == "pasta":
            # No port forwarding either way (-t/-u/-T/-U none) and no way to the host's
            # loopback through the gateway (--no-map-gw): outbound only, as from Lambda.
            return [path, "--config-net", "--foreground", "--quiet", "--ipv4-only", "--no-map-gw",
                    "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                    "-a", GUEST_ADDRESS, "-n", "24", "-g", GATEWAY, "--dns-forward", DNS_ADDRESS, "--runas", "0"]
        return [path, "--configure", "--mtu=65520", "--disable-host-loopback", "--netns-type=path"]
    return None


def stack_missing_message() -> str:
    wanted = os.environ.get(STACK_ENV, "")
    which = (f"{STACK_ENV}={wanted} names {wanted}, which is not on PATH" if wanted in STACKS
             else "neither pasta nor slirp4netns is on PATH")
    packages = " or ".join(STACKS.values())
    return (f"network='internet' needs a user-mode network stack, and {which}. Install one "
            f"(Debian/Ubuntu: apt-get install {packages}), or use network='isolated' (no outbound traffic) "
            "or network='host' (the host's network, shared with the tests).")


def bring_up_loopback() -> None:
    """``ip link set lo up`` in this process's network namespace, without the ip binary."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = _IFREQ.unpack(fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


def _has_default_route() -> bool:
    with open("/proc/self/net/route") as f:
        return any(line.split()[1:2] == ["00000000"] for line in f.readlines()[1:])


# -- the relay: the services' addresses inside the namespace, reached on the host ------------------

_BUFFER = 1 << 18  # bytes held per direction before the relay stops reading that side

_LISTEN_OWNED = "listen-owned"
"""zygote -> its relay: ``(_LISTEN_OWNED, host, port)`` with the fds of a listener inside one instance's
own network namespace and of a pidfd of that instance's keeper: as ``wire.LISTEN``, until the keeper exits."""


class _Owner:
    """The keeper of an instance with a network namespace of its own, watched through its pidfd:
    when it exits, the relay closes the listeners it holds in that namespace."""

    __slots__ = ("listeners", "pidfd")

    def __init__(self, pidfd: int, listeners: list[socket.socket]) -> None:
        self.pidfd = pidfd
        self.listeners = listeners


class _Link:
    """One relayed connection: ``inner`` (accepted in the namespace) and ``outer`` (to the host)."""

    __slots__ = ("connected", "inner", "outer", "pending", "reading")

    def __init__(self, inner: socket.socket, outer: socket.socket) -> None:
        self.inner, self.outer = inner, outer
        self.connected = False
        self.pending = {inner: bytearray(), outer: bytearray()}  # bytes still to write to that socket
        self.reading = {inner: True, outer: True}  # until that socket's peer closed its sending side

    def other(self, sock: socket.socket) -> socket.socket:
        return self.outer if sock is self.inner else self.inner

    def done(self) -> bool:
        return not any(self.reading.values()) and not any(self.pending.values())


class _Datagrams:
    """A UDP socket bound in the namespace, whose datagrams the relay sends on to ``target`` on the host."""

    __slots__ = ("target",)

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target


class Relay:
    """The relay process's loop: listeners arrive on ``ctrl`` (with the address to reach on the
    host), and each connection accepted on one is copied both ways, half-closes included; a reset
    on one side resets the other."""

    def __init__(self, ctrl: Channel) -> None:
        self.ctrl = ctrl
        self.sel = selectors.DefaultSelector()
        self.sel.register(ctrl.fileno(), selectors.EVENT_READ, None)
        self.targets: dict[int, tuple[str, int]] = {}
        self.listeners: dict[int, socket.socket] = {}
        self.shared: list[socket.socket] = []  # those of the shared namespace (LISTEN), until UNLISTEN
        self.datagrams_out: socket.socket | None = None  # on the host, for every _Datagrams socket

    def serve(self) -> None:
        while True:
            for key, mask in self.sel.select():
                if key.data is None:
                    self._control()
                elif isinstance(key.data, tuple):
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                elif isinstance(key.data, _Datagrams):
                    self._datagram(key.fileobj, key.data.target)  # type: ignore[arg-type]
                elif isinstance(key.data, _Owner):
                    self._owner_gone(key.data)
                else:
                    self._event(key.data, key.fileobj, mask)  # type: ignore[arg-type]

    def _control(self) -> None:
        try:
            msg = self.ctrl.recv(fds=True)
            while True:
                if msg[0] == wire.UNLISTEN:
                    self._unlisten()
                    if not self.ctrl.has_buffered():
                        break
                    msg = self.ctrl.recv(fds=True)
                    continue
                (fd,) = self.ctrl.take_fds(1)
                listener = socket.socket(fileno=fd)
                listener.setblocking(False)
                target = (str(msg[1]), int(msg[2]))
                self.listeners[fd] = listener
                udp = len(msg) > 3 and msg[3] == "udp"
                self.sel.register(listener, selectors.EVENT_READ, _Datagrams(target) if udp else target)
                if msg[0] == _LISTEN_OWNED:
                    (pidfd,) = self.ctrl.take_fds(1)
                    self.sel.register(pidfd, selectors.EVENT_READ, _Owner(pidfd, [listener]))
                else:
                    self.shared.append(listener)
                if not self.ctrl.has_buffered():
                    break
                msg = self.ctrl.recv(fds=True)
        except (ChannelClosed, OSError):
            os._exit(0)  # the zygote is gone

    def _unlisten(self) -> None:
        """The next simulator's services are not the last one's: its addresses are not relayed any more
        (connections already made through them stay up until their ends close)."""
        for listener in self.shared:
            self.sel.unregister(listener)
            self.listeners.pop(listener.fileno(), None)
            listener.close()
        self.shared = []
        self.ctrl.send((wire.UNLISTEN,))

    def _owner_gone(self, owner: _Owner) -> None:
        """The instance's keeper exited: its namespace's listeners go (connections made through
        them end as their peers, the instance's processes, are gone)."""
        self.sel.unregister(owner.pidfd)
        os.close(owner.pidfd)
        for listener in owner.listeners:
            self.sel.unregister(listener)
            self.listeners.pop(listener.fileno(), None)
            listener.close()

    def _datagram(self, sock: socket.socket, target: tuple[str, int]) -> None:
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError, OSError):
            return
        if self.datagrams_out is None:
            self.datagrams_out = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET,
                                               socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # UDP: a datagram nobody takes is lost, as it would be
            self.datagrams_out.sendto(data, target)

    def _accept(self, listener: socket.socket) -> None:
        try:
            inner, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        target = self.sel.get_key(listener).data
        inner.setblocking(False)
        outer = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET, socket.SOCK_STREAM)
        outer.setblocking(False)
        link = _Link(inner, outer)
        code = outer.connect_ex(target)
        if code not in (0, errno.EINPROGRESS):
            self._abort(link)
            return
        link.connected = code == 0
        self._update(link)

    def _event(self, link: _Link, sock: socket.socket, mask: int) -> None:
        try:
            if not link.connected:  # sock is outer: its connect() completed, or failed
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                link.connected = True
            else:
                if mask & selectors.EVENT_WRITE:
                    self._write(link, sock)
                if mask & selectors.EVENT_READ:
                    self._read(link, sock)
        except OSError:
            self._abort(link)
            return
        if link.done():
            self._close(link)
        else:
            self._update(link)

    def _read(self, link: _Link, sock: socket.socket) -> None:
        other = link.other(sock)
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            link.pending[other] += data
            self._write(link, other)
            return
        link.reading[sock] = False
        if not link.pending[other]:
            other.shutdown(socket.SHUT_WR)

    def _write(self, link: _Link, sock: socket.socket) -> None:
        buf = link.pending[sock]
        if not buf:
            return
        try:
            sent = sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return
        del buf[:sent]
        if not buf and not link.reading[link.other(sock)]:
            sock.shutdown(socket.SHUT_WR)

    def _update(self, link: _Link) -> None:
        for sock in (link.inner, link.outer):
            if not link.connected:
                mask = selectors.EVENT_WRITE if sock is link.outer else 0
            else:
                other = link.other(sock)
                mask = ((selectors.EVENT_READ if link.reading[sock] and len(link.pending[other]) < _BUFFER else 0)
                        | (selectors.EVENT_WRITE if link.pending[sock] else 0))
            registered = _registered(self.sel, sock)
            if mask and registered:
                self.sel.modify(sock, mask, link)
            elif mask:
                self.sel.register(sock, mask, link)
            elif registered:
                self.sel.unregister(sock)

    def _close(self, link: _Link, reset: bool = False) -> None:
        for sock in (link.inner, link.outer):
            if _registered(self.sel, sock):
                self.sel.unregister(sock)
            if reset:
                # SO_LINGER 0: close() sends RST, so the peer sees ECONNRESET, as through a cut.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _abort(self, link: _Link) -> None:
        self._close(link, reset=True)


def _registered(sel: selectors.BaseSelector, sock: socket.socket) -> bool:
    try:
        sel.get_key(sock)
    except (KeyError, ValueError):
        return False
    return True


def _relay_main(ctrl: Channel, zygote_pidfd: int) -> None:
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([zygote_pidfd], [], [], 0)[0]:
        os._exit(0)
    os.close(zygote_pidfd)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    Relay(ctrl).serve()


# -- the zygote's side ------------------------------------------------------------------------------


class Network:
    """What the zygote does for its network: :meth:`enter` once (in :func:`_zygote.main`, before
    the first keeper), :meth:`forward` for each spawn request."""

    def __init__(self, mode: str, stack: list[str] | None) -> None:
        self.mode = mode
        self.stack = stack
        self.relay: Channel | None = None
        self.bound: set[tuple[Any, ...]] = set()
        self.home = -1  # the shared namespace, returned to after making an instance's own
        self.spare = -1  # the next instance's own namespace, made ahead of demand (see prepare)
        self.spares_wanted = False

    def enter(self) -> None:
        """Move this process into a network namespace of its own (unless ``host``): after its user
        namespace, so that the network namespace is that one's and keepers may use it."""
        if self.mode == "host":
            return
        me = os.pidfd_open(os.getpid())
        try:
            # Both stay in the host's network namespace: forked before this process leaves it.
            self.relay = fork_with_channel(lambda chan: _relay_main(chan, me), keep=[me])[1]
            stack = fork_with_channel(lambda chan: _stack_main(chan, me, self.stack), keep=[me]) if self.stack else None
        finally:
            os.close(me)
        L.unshare(CLONE_NEWNET)
        bring_up_loopback()
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if stack is not None:
            self._start_stack(*stack)

    def _start_stack(self, pid: int, chan: Channel) -> None:
        """Hand the stack's process this namespace; return once the stack has configured it."""
        name = os.path.basename(self.stack[0]) if self.stack else "?"
        ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        # What the stack writes goes here, not to the test's terminal; it is shown if it fails.
        log = os.memfd_create("lambdasim-network-stack", os.MFD_CLOEXEC)
        try:
            chan.send((wire.GO,), fds=[ns, log])
        finally:
            os.close(ns)

        def output() -> str:
            text = os.pread(log, 4096, 0).decode("utf-8", "replace")
            lines = [line for line in text.splitlines() if line.strip() and "syslog" not in line]
            return (": " + " / ".join(lines)) if lines else ""

        pidfd = os.pidfd_open(pid)
        poll = select.poll()
        poll.register(pidfd, select.POLLIN)
        poll.register(chan.fileno(), select.POLLIN)  # a failed exec says why; a good one closes it
        deadline = time.monotonic() + _STACK_READY_S
        try:
            while not _has_default_route():
                for fd, _ in poll.poll(5):
                    if fd == pidfd:
                        raise OSError(errno.ENETDOWN, f"the network stack ({name}) exited before it configured "
                                                      f"the namespace{output()}")
                    try:
                        reason = wire.Refusal._make(chan.recv()).reason
                    except ChannelClosed:
                        poll.unregister(chan.fileno())  # exec'd
                        continue
                    raise OSError(errno.ENETDOWN, f"the network stack could not start: {reason}")
                if time.monotonic() > deadline:
                    raise OSError(errno.ETIMEDOUT, f"the network stack ({name}) did not configure the "
                                                   f"namespace within {_STACK_READY_S:g} s{output()}")
        finally:
            os.close(pidfd)
            os.close(log)
            chan.close()

    def forward(self, addresses: list[Any] | None) -> None:
        """Listen, inside the namespace, on each address of ``addresses`` not listened on yet."""
        if self.relay is None or not addresses:
            return
        for address in addresses:
            key = _key(address)
            if key not in self.bound and self._listen(key, wire.LISTEN):
                self.bound.add(key)

    def forget(self) -> None:
        """Stop relaying every address :meth:`forward` listened on; returns once they are free again."""
        if self.relay is None or not self.bound:
            return
        self.relay.send((wire.UNLISTEN,))
        while self.relay.recv(5.0)[0] != wire.UNLISTEN:
            pass
        self.bound.clear()

    def own_namespace(self, addresses: list[Any] | None, keeper: int) -> int:
        """A network namespace of one instance's own, with ``lo`` up and ``addresses`` relayed until
        the process of the pidfd ``keeper`` exits; its descriptor (for the keeper to join). This
        process stays in the shared namespace. OSError where the mode has no relay to give it."""
        if self.mode != "isolated" or self.relay is None:
            raise OSError(errno.EINVAL, f"{OWN_NETWORK_REFUSED} only under network='isolated' "
                                        f"(this simulator's instances are on network='{self.mode}')")
        ns = self.spare if self.spare >= 0 else self._new_namespace()
        self.spare = -1
        self.spares_wanted = True
        try:
            if addresses:
                L.setns(ns, CLONE_NEWNET)
                try:
                    for key in dict.fromkeys(_key(a) for a in addresses):
                        self._listen(key, _LISTEN_OWNED, keeper)
                finally:
                    L.setns(self.home, CLONE_NEWNET)
        except OSError:
            os.close(ns)
            raise
        return ns

    def prepare(self) -> None:
        """Make the next instance's own namespace ahead of demand, once one was asked for (creating a
        network namespace costs a few hundred microseconds, more while the kernel removes another)."""
        if self.spares_wanted and self.spare < 0:
            try:
                self.spare = self._new_namespace()
            except OSError:
                self.spares_wanted = False  # e.g. user.max_net_namespaces: the next request says why

    def wants_spare(self) -> bool:
        return self.spares_wanted and self.spare < 0

    def _new_namespace(self) -> int:
        L.unshare(CLONE_NEWNET)
        try:
            bring_up_loopback()
            return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            L.setns(self.home, CLONE_NEWNET)

    def _listen(self, key: tuple[Any, ...], kind: str, keeper: int = -1) -> bool:
        """Listen on ``key`` (host, port[, "udp"]) in this process's namespace and hand the listener (the
        bound UDP socket) to the relay."""
        assert self.relay is not None
        family = socket.AF_INET6 if ":" in key[0] else socket.AF_INET
        udp = key[2:] == ("udp",)
        listener = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(key[:2])
            if not udp:
                listener.listen(128)
            self.relay.send((kind, *key), fds=[listener.fileno()] + ([keeper] if keeper >= 0 else []))
        except OSError:
            return False  # the handler sees ECONNREFUSED there, as with no service
        finally:
            listener.close()
        return True


def _key(address: Any) -> tuple[Any, ...]:
    """A ``forward`` address as a key: (host, port), or (host, port, "udp")."""
    udp = len(address) > 2 and address[2] == "udp"
    return (str(address[0]), int(address[1]), "udp") if udp else (str(address[0]), int(address[1]))


def _stack_main(zygote: Channel, zygote_pidfd: int, command: list[str] | None) -> None:
    """The network stack's process: waits for the zygote's namespace, then becomes the stack."""
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([zygote_pidfd], [], [], 0)[0]:
        os._exit(0)
    os.close(zygote_pidfd)
    assert command is not None
    try:
        zygote.recv(fds=True)  # GO, with the namespace and the stack's error output
        ns, log = zygote.take_fds(2)
    except ChannelClosed:
        os._exit(0)
    os.set_inheritable(ns, True)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    # Python ignores SIGPIPE, and exec keeps that; pasta of 2023 takes an ignored SIGPIPE for a
    # failure to set it up ("Couldn't install signal handlers").
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    target = f"/proc/self/fd/{ns}"
    argv = [*command, "--netns", target] if os.path.basename(command[0]) == "pasta" else [*command, target, "tap0"]
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        zygote.send(wire.pack_refusal(reason=f"{argv[0]}: {e}"))
    os._exit(70)
