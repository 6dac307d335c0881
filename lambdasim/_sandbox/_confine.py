"""The fakefs sandbox's kernel backstop: each runtime in a Landlock domain (Linux 5.13+).

pyfakefs and the audit hook see what Python does; C code, ``ctypes`` and the routes no
audit event names reach the host around them. Before user code runs, the runtime (and
everything it starts) is put into a Landlock domain: reads only below what the instance
shows of the host (the Python installation and its packages, ``/usr``, ``/etc``, the code,
the layers, lambdasim's and pyfakefs' own code, which the runtime imports lazily), writes only
to its own host directory (where ``/tmp`` is mirrored) and ``/dev/null``, no program run
(nothing is executable), and, where the ABI has them (6+), no signals and no abstract Unix
sockets to processes outside the domain. TCP is left to the audit hook: a handler may
listen on localhost on Lambda, and the fakefs sandbox shares the host's network.

A SnapStart snapshot's runtime may also write below the directory its restored clones'
directories are made in, and its clones inherit that domain: C code in one clone could reach
another clone's ``/tmp`` mirror (the same function and version; the audit hook refuses it from
Python). Narrowing each clone's domain would need Landlock calls after the audit hook is in
place, which refuses them: a way around the hook for lambdasim would be one for the handler.
"""

from __future__ import annotations

import logging
import os
import sys

from lambdasim._sandbox import _landlock
from lambdasim._sandbox._spec import InstanceSpec

ENV = "LAMBDASIM_FAKEFS_LANDLOCK"
"""``0`` turns the backstop off (to compare, or where a kernel's Landlock misbehaves)."""

_log = logging.getLogger("lambdasim")
_logged = False


def abi() -> int:
    """The Landlock ABI the fakefs sandbox's runtimes use here: 0 where the kernel has none or
    ``LAMBDASIM_FAKEFS_LANDLOCK=0``. Logged once per process (logger ``lambdasim``)."""
    global _logged
    off = os.environ.get(ENV) == "0"
    wanted = 0 if off else _landlock.abi()
    if not _logged:
        _logged = True
        if wanted:
            _log.info("fakefs sandbox: each runtime in a Landlock domain (ABI %d)", wanted)
        else:
            why = f"{ENV}=0" if off else _landlock.unavailable_reason()
            _log.info("fakefs sandbox: no Landlock (%s): Python-level guards only, see the README", why)
    return wanted


def confine(spec: InstanceSpec, readable: list[str], writable: list[str]) -> int:
    """Put this runtime into its domain (before user code, with no other thread running): reads
    below ``readable`` and the runtime's own code, writes below ``writable``. Returns the ABI used,
    0 where the spec asks for none."""
    if not spec.get("landlock"):
        return 0
    return _landlock.restrict(_landlock.Policy(
        read_only=[*readable, *_runtime_reads(spec)], read_write=[*writable, "/dev/null"], deny_tcp_bind=False,
        scope_signals=True, scope_abstract_unix=True))


def _runtime_reads(spec: InstanceSpec) -> list[str]:
    import pyfakefs

    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lambdasim, also from a checkout
    reads = [own, os.path.dirname(os.path.abspath(pyfakefs.__file__)), os.path.dirname(os.__file__),
             sys.base_prefix, "/dev/urandom", "/dev/random", "/dev/zero"]
    reads += [p for p in (spec.get("python_home"), spec.get("runtime_sdk")) if p]
    return reads
