"""What of the host an instance sees: the Python installation and the base system directories.

Shared by both sandboxes; portable (no Linux-only calls).
"""

from __future__ import annotations

import os
import sys

_OWN_PACKAGES = frozenset({"lambdasim", "pytest_lambdasim"})

LAMBDA_PYTHON_HOME = "/var/lang"
"""Where Lambda keeps Python (``/var/lang/bin/python3.X``, ``/var/lang/lib/python3.X/site-packages``)."""
RUNTIME_SDK = "/var/runtime/sdk"
"""Where an instance on another Python than lambdasim's sees the AWS SDK built for it (see _interpreters)."""
HOST_TMP = "/var/runtime/host-tmp"
"""Where other host directories under /tmp are seen: ``/tmp/x`` at ``/var/runtime/host-tmp/tmp/x``."""
# Host directories under /tmp seen elsewhere than HOST_TMP + their path; set by host_view(),
# in the sandbox's helper, before it forks instances (which inherit it).
_moved: dict[str, str] = {}

FAKEFS_CLONES = ".clones"
"""fakefs: a SnapStart snapshot's host directory + this holds the directories of its restored clones, so
that they are inside the snapshot runtime's Landlock domain, which the clones inherit (see _confine)."""

SANDBOX_UID = 993  # sbx_user1051 on Lambda
SANDBOX_GID = 990
SANDBOX_HOME = "/home/sbx_user1051"
# /etc/passwd and /etc/group as an instance sees them: ~ resolves, as on Lambda, to a home
# that does not exist; /etc/hosts is Amazon Linux's, as on Lambda. (The namespace sandbox's
# zygote adds resolv.conf for its network: see _network.etc_files.)
ETC_FILES = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\n"
              f"sbx_user1051:x:{SANDBOX_UID}:{SANDBOX_GID}::{SANDBOX_HOME}:/sbin/nologin\n",
    "group": f"root:x:0:\nsbx_user1051:x:{SANDBOX_GID}:\n",
    "hosts": "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n"
             "::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n",
}


def python_paths() -> list[str]:
    """Directories the handler must be able to import from, as host paths."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path]
    for finder in sys.meta_path:
        # setuptools' editable installs map package names to source directories.
        module = sys.modules.get(getattr(finder, "__module__", "") or "")
        mapping = getattr(module, "MAPPING", None)
        if isinstance(mapping, dict):
            # lambdasim's own code is loaded in the zygote already; a checkout of it
            # need not be visible to handlers (and under /tmp it would show in theirs).
            candidates.extend(str(v) for k, v in mapping.items() if k not in _OWN_PACKAGES)
    found: list[str] = []
    for path in candidates:
        if not path or not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if not os.path.isdir(real):
            real = os.path.dirname(real)
        found.append(real)
    found.sort(key=len)
    kept: list[str] = []
    for path in found:
        if path == "/" or any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            continue
        kept.append(path)
    return kept


def instance_path(path: str) -> str:
    """Where an instance sees the host path ``path`` of a directory it shows (or of a file in one).

    Paths outside the host's /tmp keep their place. Under it they cannot (an instance's /tmp is
    its own): the Python environment there (a CI virtualenv, a Python installed under /tmp) is
    seen where Lambda keeps Python, /var/lang, so that its frames in tracebacks read as on
    Lambda (``/var/lang/lib/python3.X/site-packages/...``); anything else under HOST_TMP.
    """
    if path != "/tmp" and not path.startswith("/tmp/"):
        return path
    for host, seen in _moved.items():
        if path == host or path.startswith(host + "/"):
            return seen + path[len(host):]
    return HOST_TMP + path


def base_layout() -> tuple[list[str], dict[str, str]]:
    """Top-level host directories to bind, and top-level symlinks to recreate."""
    binds = ["/usr", "/etc"]
    links: dict[str, str] = {}
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + name
        if os.path.islink(path):
            links[name] = os.readlink(path)
        elif os.path.isdir(path):
            binds.append(path)
    return binds, links


def host_view() -> tuple[list[str], dict[str, str], list[str]]:
    """What an instance sees of the host: directories to show read-only (the base ones and
    the Python installation, none twice; each at :func:`instance_path`), top-level symlinks,
    and the Python paths alone."""
    binds, links = base_layout()
    python = python_paths()
    binds += [p for p in python if not any(p == b or p.startswith(b + "/") for b in binds)]
    _moved.clear()
    home = os.path.realpath(sys.prefix)
    if home in binds and home.startswith("/tmp/"):  # a directory of its own (not inside another bind)
        _moved[home] = LAMBDA_PYTHON_HOME
        if os.path.abspath(sys.prefix) != home:
            _moved[os.path.abspath(sys.prefix)] = LAMBDA_PYTHON_HOME
    return binds, links, python
