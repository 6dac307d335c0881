"""The namespace sandbox's helper process ("zygote") and its per-instance keepers.

Process tree, all in private namespaces the host never sees::

    simulator ──socket── zygote (own mount ns, own PID ns; own user ns when not root)
                           └─ keeper, PID 1 of a fresh PID ns (and UTS, IPC ns): builds the
                              Lambda root, holds /tmp, then drops into a nested user ns
                              (as the user, or nobody when root: see _identity)
                                └─ runtime (lambdasim._runtime): Init + invocations

The zygote pre-imports everything the runtime needs and keeps one keeper (with its first
runtime) prepared ahead of demand, so a cold start pays only for what is particular to
the function: its code, its /tmp, entering the root, and Init. A reset (the runtime
killed, or exited) ends every process of the instance but the keeper and starts a new
runtime: the keeper, and with it the instance's /tmp, lives on. An instance may have a
network namespace of its own (``own_network``: see ``_network``). When the simulator
goes away its socket closes and the zygote exits; keepers die with it
(PR_SET_PDEATHSIG), a keeper that dies takes its whole PID namespace (the runtime and
anything it started) with it, and the kernel removes every mount with the last process
of a namespace. Nothing is written on the host.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
from collections.abc import Callable

# Everything the runtime needs is imported here, before the first fork, so that
# instances share these pages and cold starts do not pay for the imports.
import lambdasim._managed_rt as _managed_rt
import lambdasim._rapi as _rapi
import lambdasim._runtime as _runtime
from lambdasim import _wire as wire
from lambdasim._sandbox import _cgroup, _identity, _restore, _usage
from lambdasim._sandbox import _linux as L
from lambdasim._sandbox._freeze import Freezer
from lambdasim._sandbox._layout import ETC_FILES, LAMBDA_PYTHON_HOME, RUNTIME_SDK, host_view
from lambdasim._sandbox._network import CLONE_NEWNET, Network, etc_files
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel, ChannelClosed, fork_with_channel

# Mounted over the skeleton mount point while the host tree is still needed; every
# host path is cloned before this directory is covered, so which one it is does not matter.
_SKELETON = "/proc"
_REFILL_AFTER_S = 0.005
_RUNTIME_PACKAGE = os.path.dirname(os.path.abspath(_runtime.__file__))
RUNTIME_BOOTSTRAP = (
    f"#!{_runtime.host_tmp_path(os.path.abspath(sys.executable))}\n"
    "# The managed Python runtime's start (Lambda's is /var/runtime/bootstrap too): lambdasim's built-in\n"
    "# runtime as a Runtime API client, for functions with a wrapper or extensions.\n"
    "import sys\n"
    "from lambdasim._runtime_http import main\n"
    "main(sys.argv)\n"
)
"""/var/runtime/bootstrap of every instance; /var/runtime (this script's directory) is on its sys.path."""


class Keeper:
    """PID 1 of one instance: builds its root, holds its /tmp, forks runtimes.

    Keepers are made ahead of demand (see :func:`main`): :meth:`prepare` does all that
    is the same for every function, :meth:`finish` what a spawn request brings.
    """

    def __init__(self, binds: list[str], links: dict[str, str], place: _cgroup.CgroupPlace | None = None) -> None:
        self.binds = binds
        self.links = links
        self.place = place
        self.group: _cgroup.InstanceCgroup | None = None
        self.limit_files: dict[str, int] = {}
        self.freezer = Freezer()
        self.spec: InstanceSpec | None = None
        self.ctrl: Channel | None = None
        self.runtime_pid = 0
        self.to_runtime: Channel | None = None

    def _join_group(self) -> None:
        """Make the instance's cgroup and move into it, while the host's /sys is in view and
        before a request comes (a v1 attach waits for an RCU grace period: see _cgroup)."""
        if self.place is None:
            return
        try:
            group = self.place.create()
        except OSError:
            return  # e.g. the place is gone: rlimits and signals still work
        try:
            group.join_keeper()
            files = group.open_for_keeper()
        except OSError:
            return
        self.group = group
        self.limit_files = {k: files.pop(k) for k in ("pids.max", "memory.max") if k in files}
        self.freezer = Freezer(files, group.version)

    def prepare(self) -> None:
        L.unshare(L.CLONE_NEWNS)
        self._join_group()
        # The first runtime is forked now, into this mount namespace and the counting
        # cgroups, so that its own set-up is done before a request comes; the pivot below
        # moves it too. It waits for its spec before it can start anything.
        self.runtime_pid, self.to_runtime = fork_with_channel(_first_runtime)
        self.freezer.join(self.runtime_pid)

        # Clone every host tree first: once the skeleton covers its mount point, host
        # paths below it are out of reach.
        clones = [(p, L.open_tree(p, recursive=True)) for p in self.binds]
        devices = [(f"/dev/{d}", L.open_tree(f"/dev/{d}", recursive=False))
                   for d in ("null", "zero", "full", "random", "urandom")]
        # lambdasim's own runtime code, where Lambda keeps its runtime's: what a Runtime API instance's
        # /var/runtime/bootstrap imports (the checkout itself stays out of view: see _layout).
        own = L.open_tree(_RUNTIME_PACKAGE, recursive=False)
        sk = _SKELETON
        L.mount("lambdasim-root", sk, "tmpfs", L.MS_NOSUID, "mode=0755,size=4m")
        for d in ("var/task", "var/runtime", "var/lang", "opt", "tmp", "proc", "dev", "home", ".old", "etc"):
            os.makedirs(f"{sk}/{d}", exist_ok=True)
        for name, target in self.links.items():
            os.symlink(target, f"{sk}/{name}")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{sk}/dev/{name}")
        for target, fd in clones:
            # Python under the host's /tmp (a CI virtualenv, pytester's folders) cannot
            # keep its path: the instance's /tmp is its own. It is mounted elsewhere and
            # the runtime is told (see _runtime.relocate_host_tmp).
            target = _runtime.host_tmp_path(target)
            os.makedirs(sk + target, exist_ok=True)
            L.move_mount(fd, sk + target)
            os.close(fd)
        os.makedirs(f"{sk}/var/runtime/lambdasim")
        L.move_mount(own, f"{sk}/var/runtime/lambdasim")
        os.close(own)
        with open(f"{sk}/var/runtime/bootstrap", "w") as f:
            f.write(RUNTIME_BOOTSTRAP)
        os.chmod(f"{sk}/var/runtime/bootstrap", 0o755)
        for target, fd in devices:
            open(sk + target, "w").close()
            L.move_mount(fd, sk + target)
            os.close(fd)
        for name, text in ETC_FILES.items():
            with open(f"{sk}/.{name}", "w") as f:
                f.write(text)
            L.mount(f"{sk}/.{name}", f"{sk}/etc/{name}", None, L.MS_BIND)
            os.unlink(f"{sk}/.{name}")

    def finish(self, spec: InstanceSpec, rt_fd: int, netns: int = -1) -> None:
        """Add the function's code, layers and /tmp, enter the root, lock it; join the network
        namespace ``netns`` (the instance's own, see ``_network.Network.own_namespace``) if given."""
        assert self.to_runtime is not None
        if netns >= 0:
            # While the keeper still has its capabilities in the zygote's user namespace, which owns
            # the network namespace; the first runtime follows in enter(), runtimes after it inherit it.
            try:
                L.setns(netns, CLONE_NEWNET)
            finally:
                os.close(netns)
        if self.limit_files:
            # The keeper is lambdasim's process, not the function's: one more than Lambda's limit.
            # The group's hard memory limit is what an instance may ever cost the host (see _usage).
            os.write(self.limit_files["pids.max"], str(_usage.TASKS_LIMIT + 1).encode())
            size = (spec["memory_mb"] + spec["tmp_mb"]) * 1024 * 1024 + _usage.HARNESS_MARGIN
            os.write(self.limit_files["memory.max"], str(size).encode())
            for fd in self.limit_files.values():
                os.close(fd)
            self.limit_files = {}
        else:
            # RLIMIT_NPROC counts tasks per user and user namespace (each instance has its own);
            # the keeper is one of them.
            spec = InstanceSpec(**spec, tasks_rlimit=_usage.TASKS_LIMIT + 1)
        self.spec = spec
        self.to_runtime.send(wire.pack_spawn(spec=spec, kind=wire.SPEC), fds=[rt_fd])
        os.close(rt_fd)
        sk = _SKELETON
        code = L.open_tree(spec["code_dir"], recursive=True)
        layers: list[str] = spec["layers"]
        if len(layers) > 1:
            # Lambda extracts layers into /opt in order, later ones winning: a read-only
            # overlay with the last layer on top gives the same view.
            L.mount("lambda-layers", f"{sk}/opt", "overlay", L.MS_RDONLY, "lowerdir=" + ":".join(reversed(layers)))
        elif layers:
            layer = L.open_tree(layers[0], recursive=True)
            L.move_mount(layer, f"{sk}/opt")
            os.close(layer)
        L.move_mount(code, f"{sk}/var/task")
        os.close(code)
        for host, target in ((spec.get("python_home"), LAMBDA_PYTHON_HOME), (spec.get("runtime_sdk"), RUNTIME_SDK)):
            # Another Python than lambdasim's, where Lambda keeps Python, and the AWS SDK built for it.
            if host is not None:
                tree = L.open_tree(host, recursive=True)
                os.makedirs(sk + target, exist_ok=True)
                L.move_mount(tree, sk + target)
                os.close(tree)
        _identity.open_to_sandbox_user([f"{sk}/var/task", f"{sk}/opt"], scratch=f"{sk}/.old")
        L.mount("lambda-tmp", f"{sk}/tmp", "tmpfs", L.MS_NOSUID | L.MS_NODEV,
                _identity.tmp_mount_options(spec["tmp_mb"]))
        L.mount("proc", f"{sk}/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
        os.chdir(sk)
        L.pivot_root(".", ".old")
        L.umount2("/.old", L.MNT_DETACH)
        os.rmdir("/.old")
        os.chdir("/")
        L.mount_setattr("/", L.MOUNT_ATTR_RDONLY, 0, recursive=True)
        L.mount_setattr("/tmp", 0, L.MOUNT_ATTR_RDONLY, recursive=False)
        L.mount_setattr("/proc", 0, L.MOUNT_ATTR_RDONLY, recursive=False)

        # A nested user namespace locks every mount above (no remount read-write, no
        # unmounting /tmp to look underneath), and the handler runs as sbx_user1051
        # with no capabilities, as on Lambda.
        _identity.enter_user_namespace()
        L.drop_all_capabilities()
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        # The simulator reads this instance's /tmp through /proc/<pid>/root.
        L.prctl(L.PR_SET_DUMPABLE, 1)
        self.to_runtime.send((wire.GO,))
        self.to_runtime.close()
        self.to_runtime = None

    def start_runtime(self, rt_fd: int) -> None:
        """A new runtime after a reset: it inherits the finished, locked root."""
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                if self.ctrl is not None:
                    self.ctrl.close()
                self.freezer.join()
                self.freezer.close_in_child()
                assert self.spec is not None  # finish() came first
                run_runtime(socket.socket(fileno=rt_fd), self.spec)
            finally:
                os._exit(70)
        os.close(rt_fd)
        self.runtime_pid = pid

    def serve(self, ctrl: Channel) -> None:
        self.ctrl = ctrl
        while True:
            pidfd = os.pidfd_open(self.runtime_pid) if self.runtime_pid else -1
            try:
                while True:
                    watch = [ctrl.fileno()] + ([pidfd] if pidfd >= 0 else [])
                    ready, _, _ = select.select(watch, [], []) if not ctrl.has_buffered() else ([ctrl.fileno()], [], [])
                    if pidfd in ready:
                        _, status = os.waitpid(self.runtime_pid, 0)
                        self.runtime_pid = 0
                        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                        # Nothing the function started outlives its runtime: the next one starts in
                        # an instance with only the keeper (and /tmp) left, as after a reset on Lambda.
                        self.freezer.reset()
                        ctrl.send(wire.pack_exited(code=code))
                        break
                    msg = ctrl.recv(fds=True)
                    if msg[0] == wire.FREEZE:
                        self.freezer.freeze()
                    elif msg[0] == wire.THAW:
                        self.freezer.thaw()
                    elif msg[0] == wire.KILL and self.runtime_pid:
                        # A reset: every process of the instance, thawed so that it can die (see KeeperLink).
                        self.freezer.kill_all()
                    elif msg[0] == wire.START and not self.runtime_pid:
                        (fd,) = ctrl.take_fds(1)
                        self.start_runtime(fd)
                        break
            finally:
                if pidfd >= 0:
                    os.close(pidfd)


def _first_runtime(keeper: Channel) -> None:
    """The runtime forked with a pooled keeper: set up now, get its function later."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    logs = _runtime.LogCapture()
    try:
        msg = keeper.recv(fds=True)
    except ChannelClosed:
        os._exit(0)  # the pool is shutting down
    (rt_fd,) = keeper.take_fds(1)
    spec: InstanceSpec = wire.Spawn._make(msg).spec

    def enter() -> None:
        try:
            keeper.recv()  # GO: the root is finished and locked
        except ChannelClosed:
            os._exit(0)  # the keeper failed, and reports why
        keeper.close()
        if spec.get("own_network"):
            # The keeper's (see Keeper.finish), joined before its user namespace: this one does not own it.
            net = os.open("/proc/1/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            L.setns(net, CLONE_NEWNET)
            os.close(net)
        user = os.open("/proc/1/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        mnt = os.open("/proc/1/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        L.setns(user, L.CLONE_NEWUSER)
        L.setns(mnt, L.CLONE_NEWNS)
        os.close(user)
        os.close(mnt)
        _identity.become_sandbox_user()
        L.drop_all_capabilities()
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        L.prctl(L.PR_SET_DUMPABLE, 1)

    run_runtime(socket.socket(fileno=rt_fd), spec, enter, logs)


def run_runtime(sock: socket.socket, spec: InstanceSpec, enter: Callable[[], None] | None = None,
                logs: _runtime.LogCapture | None = None) -> None:
    """Become the instance's runtime process: the built-in Python runtime, or the Runtime API
    server with the function's own runtime behind it (``runtime_kind`` ``api``)."""
    if spec.get("runtime_kind") == "api":
        _rapi.run(sock, spec, enter, logs)
    elif spec.get("runtime_kind") == "managed":  # Lambda Managed Instances: workers under a supervisor
        _managed_rt.run(sock, spec, enter, logs)
    else:
        # A SnapStart version's snapshot: after Init it restores instances (see _restore).
        _runtime.run(sock, spec, enter, logs, snapshot=_restore.NAMESPACE if spec.get("snapshot") else None)


def _pooled_keeper(zygote: Channel, zygote_pidfd: int, binds: list[str], links: dict[str, str],
                   place: _cgroup.CgroupPlace | None) -> None:
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    # As PID 1 of its namespace the keeper's getppid() is 0, so the race between
    # fork and PR_SET_PDEATHSIG is closed with a pidfd of the zygote instead.
    if select.select([zygote_pidfd], [], [], 0)[0]:
        os._exit(0)
    os.close(zygote_pidfd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    keeper = Keeper(binds, links, place)
    failure = ""
    try:
        keeper.prepare()
    except Exception as e:  # noqa: BLE001 - reported to the simulator when a request comes
        failure = f"{type(e).__name__}: {e}"
    try:
        msg = zygote.recv(fds=True)
    except ChannelClosed:
        keeper.freezer.end()
        os._exit(0)
    spec: InstanceSpec = wire.Spawn._make(msg).spec
    ctrl_fd, rt_fd = zygote.take_fds(2)
    netns = zygote.take_fds(1)[0] if spec.get("own_network") else -1
    zygote.close()
    ctrl = Channel(socket.socket(fileno=ctrl_fd))
    try:
        if not failure:
            keeper.finish(spec, rt_fd, netns)
    except Exception as e:  # noqa: BLE001 - reported to the simulator with its cause
        failure = f"{type(e).__name__}: {e}"
    if failure:
        ctrl.send(wire.pack_refusal(reason=failure))
        keeper.freezer.end()
        os._exit(1)
    # The keeper's PID as the simulator sees it is not ours to know; a pidfd carries it.
    me = os.pidfd_open(os.getpid())
    state = keeper.freezer.state_fd()
    group = keeper.group
    ctrl.send(wire.pack_keeper_ready(freezer=keeper.freezer.kind, cgroup_version=group.version if group else 0,
                                     cgroup_paths=group.paths if group else {}),
              fds=[me] + ([state] if state >= 0 else []))
    os.close(me)
    with contextlib.suppress(ChannelClosed, OSError):
        keeper.serve(ctrl)
    # Scale-down, reaping, redeploy, close: a frozen instance is killed as it is, with
    # no thaw before (Lambda gives a runtime without extensions no shutdown time).
    keeper.freezer.end()
    os._exit(0)  # as PID 1, exiting kills everything else in the instance


def _own_network(net: Network, spec: InstanceSpec, keeper_pid: int) -> int:
    """The network namespace of an instance of its own (``own_network``), for its keeper to join: its
    listeners for the spec's ``forward`` addresses stay with the relay while that keeper lives."""
    keeper = os.pidfd_open(keeper_pid)
    try:
        return net.own_namespace(spec.get("forward"), keeper)
    finally:
        os.close(keeper)


def _refuse(ctrl_fd: int, reason: str) -> None:
    """Answer a spawn request on the instance's control channel (the fd stays open): it cannot be made."""
    ctrl = Channel(socket.socket(fileno=os.dup(ctrl_fd)))
    with contextlib.suppress(OSError):
        ctrl.send(wire.pack_refusal(reason=reason))
    ctrl.close()


def _own_pid_namespace() -> None:
    """Move the rest of this process into PID 1 of a new PID namespace.

    An unprivileged zygote may not re-enter the host's PID namespace, which it must
    do before it can give each instance a new one; inside a namespace of its own it
    may. The original process stays behind only to wait, so that the simulator's
    handle on it stays valid; both die when the simulator goes away.
    """
    L.unshare(L.CLONE_NEWPID)
    parent = os.pidfd_open(os.getpid())
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([parent], [], [], 0)[0]:
        os._exit(0)
    os.close(parent)


def main(fd: int, network: str = "isolated", stack: list[str] | None = None) -> None:
    """Serve spawn requests on the socket ``fd`` until the simulator closes it; instances are on
    ``network`` (see ``_network``; ``stack`` is the command of the user-mode stack for ``internet``)."""
    chan = Channel(socket.socket(fileno=fd))
    # No PR_SET_PDEATHSIG here: it fires when the *thread* that started us exits, and a
    # Simulator may be made in a thread that ends before it does. The end of the
    # simulator's process closes our socket instead, which the serving loop notices.
    uid, gid = os.getuid(), os.getgid()
    simulator = os.getppid()
    try:
        if uid != 0:
            L.unshare(L.CLONE_NEWUSER | L.CLONE_NEWNS)
            L.write_file("/proc/self/setgroups", "deny")
            L.write_file("/proc/self/uid_map", f"0 {uid} 1")
            L.write_file("/proc/self/gid_map", f"0 {gid} 1")
        else:
            L.unshare(L.CLONE_NEWNS)
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
        # Instances' cgroups (as root, or with a delegated cgroup v2 subtree): counted, limited and
        # frozen by the kernel; else rlimits, procfs and signals (see _cgroup, _usage, _freeze).
        # Found while PIDs are the host's: a place is named after its simulator's (see _cgroup.sweep).
        place = _cgroup.CgroupPlace.find(simulator)
        _own_pid_namespace()
        # One network namespace for every instance, made here once: a cold start pays nothing for it.
        net = Network(network, stack)
        net.enter()
        pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        chan.send(wire.pack_refusal(reason=str(e)))
        return
    binds, links, python = host_view()
    ETC_FILES.update(etc_files(network))  # before the first keeper writes them into its /etc
    _identity.hide_test_process(uid)
    chan.send(wire.pack_helper_ready(python_paths=python, limits=place.limits if place else "rlimit+procfs"))
    # Keepers are reaped by the kernel and die with the zygote (PR_SET_PDEATHSIG,
    # and the zygote's PID namespace ending with it); the simulator waits for each
    # one through the pidfd the keeper sends it.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    me = os.pidfd_open(os.getpid())
    # Keep the garbage collector of every instance away from the zygote's objects:
    # touching them would copy their pages into each instance.
    gc.collect()
    gc.freeze()

    spare_pid = 0

    def prefork() -> Channel:
        """A keeper made ahead of demand, as Lambda keeps sandboxes warm before
        a function is placed in them: a request then pays only for its own part."""
        nonlocal spare_pid
        # Each instance gets a PID namespace of its own: its /proc shows only itself.
        L.setns(pid_ns, L.CLONE_NEWPID)
        L.unshare(L.CLONE_NEWPID)
        spare_pid, keeper = fork_with_channel(lambda k: _pooled_keeper(k, me, binds, links, place), keep=[me])
        return keeper

    spare: Channel | None = prefork()
    try:
        while True:
            try:
                # The spare is replaced once things are quiet, so that making it does
                # not compete with the cold start that used the last one.
                quiet = spare is not None and not net.wants_spare()
                msg = chan.recv(timeout=None if quiet else _REFILL_AFTER_S, fds=True)
            except TimeoutError:
                msg = (wire.REFILL,)
            if msg[0] == wire.REFILL:  # the simulator is done with its cold start
                if spare is None:
                    spare = prefork()
                net.prepare()
                continue
            if msg[0] == wire.RESET:  # the next simulator of the process gets this zygote
                net.forget()
                continue
            if msg[0] != wire.SPAWN:
                continue
            ctrl_fd, rt_fd = chan.take_fds(2)
            spec: InstanceSpec = wire.Spawn._make(msg).spec
            if spare is None:
                spare = prefork()
            fds = [ctrl_fd, rt_fd]
            hand_over = True
            if spec.get("own_network"):
                try:
                    fds.append(_own_network(net, spec, spare_pid))
                except ProcessLookupError:
                    hand_over = False  # the spare died: the simulator hears of it on its own channels
                    spare.close()
                    spare = None
                except OSError as e:
                    # The spare stays the spare; the simulator hears why on the instance's channel.
                    _refuse(ctrl_fd, e.strerror or str(e))
                    hand_over = False
            else:
                # The services' addresses, inside the namespace, before the instance can connect.
                net.forward(spec.get("forward"))
            if hand_over and spare is not None:
                # If the spare died, the simulator hears of it on its own channels.
                with contextlib.suppress(OSError):
                    spare.send(wire.pack_spawn(spec=spec), fds=fds)
                spare.close()
                spare = None
            for fd in fds:
                os.close(fd)
            chan.send((wire.SPAWNED,))
    except (ChannelClosed, OSError):
        pass
    finally:
        if place is not None:
            # The simulator removes its instances' groups; the spare's goes with the place, once
            # the spare (perhaps still being prepared) is gone: killed, as its instance never ran.
            if spare is not None:
                spare.close()
                with contextlib.suppress(OSError):  # ESRCH: it is gone already
                    pidfd = os.pidfd_open(spare_pid)
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], 2.0)
                    os.close(pidfd)
            place.close(wait=3.0)
