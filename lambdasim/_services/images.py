"""Local container images for the ``docker`` provider, built without any registry.

Where the official images (``redis:7``, ``memcached:1.6``, ``motoserver/moto``) cannot
be pulled, :func:`ensure_image` builds a small image ``FROM scratch`` out of what this
machine already has:

* redis and memcached: the Debian binary, every shared library ``ldd`` lists for it
  (and the dynamic loader), a minimal ``/etc/passwd`` with ``nobody``, and ``/tmp``;
* aws: this Python interpreter, its standard library (without tests, tkinter, idle, ...)
  and the installed ``moto`` with the distributions it needs to serve (its requirements
  and those of its ``server`` extra, less ``cfn-lint``) with the byte code already compiled
  for them, plus every library ``ldd`` lists for the interpreter and each extension module.

Files keep their host paths, so the interpreter finds its prefix as it does here. The
build context is a tar made in memory (nothing is written to disk). An image is reused
while its ``lambdasim.image-key`` label matches what it would be built from now (the
binary's digest, or the interpreter and distribution versions); otherwise it is rebuilt.

``python -m lambdasim._services.images [KIND...]`` builds them and prints each tag
with its build time and size.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdasim._errors import ServiceError
from lambdasim._services import KINDS, ProviderUnavailable
from lambdasim._services.engine import connect

log = logging.getLogger("lambdasim")

# Bump when the recipe below changes, so that images built by an older one are rebuilt.
BUILDER_VERSION = "1"
KEY_LABEL = "lambdasim.image-key"
REPOSITORY = "lambdasim"
BUILD_TIMEOUT_S = 900.0

SERVER_PORT = {"redis": 6379, "memcached": 11211, "aws": 5000}
_BINARY = {"redis": "redis-server", "memcached": "memcached"}
_APT_HINT = {"redis": "apt-get install -y redis-server", "memcached": "apt-get install -y memcached"}
_NOBODY = 65534
_PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    f"nobody:x:{_NOBODY}:{_NOBODY}:nobody:/nonexistent:/sbin/nologin\n"
)
_GROUP = f"root:x:0:\nnogroup:x:{_NOBODY}:\n"
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}

# Never walked into: tests, GUI and packaging parts of the standard library, byte code (added per source).
_SKIP_DIRS = frozenset({
    "__pycache__", "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "site-packages", "dist-packages",
})
_SKIP_DYNLOAD = re.compile(r"^(_test|_tkinter|xxlimited|_xxtestfuzz|_ctypes_test|_xxsubinterpreters)")
# Requirements of moto's server extra that only some services use and that weigh a lot
# (cfn-lint alone brings sympy, networkx and aws-sam-translator: ~70 MB).
_SKIP_DISTS = frozenset({"cfn-lint"})


def image_tag(kind: str) -> str:
    """The tag of the local image for ``kind``: ``lambdasim/redis:local``."""
    return f"{REPOSITORY}/{kind}:local"


@dataclass
class Recipe:
    """What a local image holds: ``files`` maps a path in the image to the host file it copies."""

    kind: str
    key: str
    files: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)

    def dockerfile(self) -> str:
        lines = ["FROM scratch", "COPY rootfs/ /"]
        env = {**_BASE_ENV, **self.env}
        lines.append("ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()))
        lines += [
            f"USER {_NOBODY}:{_NOBODY}",
            "WORKDIR /tmp",
            f"EXPOSE {SERVER_PORT[self.kind]}",
        ]
        if self.entrypoint:
            lines.append("ENTRYPOINT " + _json_list(self.entrypoint))
        lines.append("CMD " + _json_list(self.cmd))
        return "\n".join(lines) + "\n"


def _json_list(items: list[str]) -> str:
    return json.dumps(items)


# --- what goes in -------------------------------------------------------------------------------------------------


def _ldd(paths: Iterable[Path]) -> set[Path]:
    """The shared libraries (and loader) that ``ldd`` lists for ``paths``, as they are named there."""
    if shutil.which("ldd") is None:
        raise ProviderUnavailable("ldd is not installed, so no local image can be built: apt-get install -y libc-bin")
    found: set[Path] = set()
    todo = sorted({str(p) for p in paths})
    for start in range(0, len(todo), 64):
        chunk = todo[start : start + 64]
        # ldd exits non-zero when one of the files is not dynamic (a static helper, ...): that is fine.
        out = subprocess.run(["ldd", *chunk], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            line = line.strip()
            if "=>" in line:
                target = line.split("=>", 1)[1].strip()
                if target.startswith("not found"):
                    log.warning("lambdasim: ldd finds no %s (needed by a file of a local image)", line.split()[0])
                    continue
            elif line.startswith("/") and "(0x" in line:
                target = line  # the dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
            else:
                continue
            path = target.split(" (0x", 1)[0].strip()
            if path.startswith("/"):
                found.add(Path(path))
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _binary(kind: str) -> Path:
    name = _BINARY[kind]
    found = shutil.which(name) or f"/usr/bin/{name}"
    path = Path(found)
    if not path.is_file():
        raise ProviderUnavailable(
            f"{name} is not installed, so the local image {image_tag(kind)} cannot be built: {_APT_HINT[kind]}")
    return path


def _binary_key(kind: str) -> str:
    binary = _binary(kind)
    return hashlib.sha256(f"{BUILDER_VERSION}:{kind}:{_sha256(binary.resolve())}".encode()).hexdigest()[:16]


def _binary_recipe(kind: str) -> Recipe:
    binary = _binary(kind)
    recipe = Recipe(kind=kind, key=_binary_key(kind))
    # Keep the name (redis-server is a symlink to redis-check-rdb, and redis picks its mode from argv[0]).
    recipe.files[f"/usr/bin/{_BINARY[kind]}"] = binary
    for lib in _ldd([binary]):
        recipe.files[str(lib)] = lib
    recipe.env["LD_LIBRARY_PATH"] = ":".join(sorted({str(Path(p).parent) for p in recipe.files if ".so" in p}))
    if kind == "redis":
        recipe.cmd = ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
    else:
        recipe.cmd = ["memcached"]
    return recipe


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _moto_distributions() -> list[importlib.metadata.Distribution]:
    """moto and the installed distributions it needs to serve (its requirements and its server extra's)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        raise ProviderUnavailable(
            "packaging is not installed, so the local image lambdasim/aws:local cannot be built: "
            "pip install packaging") from None
    try:
        importlib.metadata.distribution("moto")
    except importlib.metadata.PackageNotFoundError:
        raise ProviderUnavailable(
            "moto is not installed, so the local image lambdasim/aws:local cannot be built: "
            "pip install 'moto[server]'") from None
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [("moto", ("server",))]
    while todo:
        name, extras = todo.pop()
        if _norm(name) in _SKIP_DISTS:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed here
        key = _norm(dist.metadata["Name"])
        if key in seen:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            envs = [{"extra": extra} for extra in ("", *extras)]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(req.extras)))
    if "flask" not in seen or "werkzeug" not in seen:
        raise ProviderUnavailable(
            "moto's server extra (flask, werkzeug) is not installed, so lambdasim/aws:local cannot be built: "
            "pip install 'moto[server]'")
    return [seen[k] for k in sorted(seen)]


def _interpreter() -> Path:
    return Path(os.path.realpath(sys.executable))


def _moto_key() -> str:
    dists = ",".join(f"{_norm(d.metadata['Name'])}=={d.version}" for d in _moto_distributions())
    text = f"{BUILDER_VERSION}:aws:{_interpreter()}:{sys.version}:{dists}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _walk(root: Path, skip_dirs: frozenset[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs and not d.startswith("config-")]
        for name in filenames:
            yield Path(dirpath) / name


def _moto_recipe() -> Recipe:
    dists = _moto_distributions()
    python = _interpreter()
    recipe = Recipe(kind="aws", key=_moto_key())
    recipe.files[str(python)] = python
    # The standard library and its extension modules, minus what a server never imports.
    stdlib_dirs = {Path(sysconfig.get_path("stdlib")), Path(sysconfig.get_path("platstdlib"))}
    dynload = sysconfig.get_config_var("DESTSHARED")
    for directory in sorted(stdlib_dirs):
        for path in _walk(directory, _SKIP_DIRS):
            if path.suffix in (".pyc", ".pyo", ".exe") or (path.suffix == ".so" and _SKIP_DYNLOAD.match(path.name)):
                continue
            recipe.files[str(path)] = path
    if dynload and Path(dynload).is_dir() and not any(Path(dynload).is_relative_to(d) for d in stdlib_dirs):
        for path in Path(dynload).iterdir():
            if path.suffix == ".so" and not _SKIP_DYNLOAD.match(path.name):
                recipe.files[str(path)] = path
    # The distributions, file by file as their RECORD lists them.
    site_dirs: list[str] = []
    for dist in dists:
        root = Path(str(dist.locate_file(""))).resolve()
        if str(root) not in site_dirs:
            site_dirs.append(str(root))
        for rel in dist.files or []:
            parts = set(Path(str(rel)).parts)
            if parts & {"__pycache__", "tests", "test"} or str(rel).endswith((".pyc", ".pyo")):
                continue
            path = Path(str(dist.locate_file(rel))).resolve()
            if path.is_file():
                recipe.files[str(path)] = path
    # The byte code this interpreter already compiled for the shipped sources: it costs ~50 MB of context
    # but makes each server start ~1 s faster (0.6 s instead of 1.6 s to answer, measured here). Docker keeps
    # the sources' mtimes, so these stay valid.
    for name in [n for n in recipe.files if n.endswith(".py")]:
        cached = Path(importlib.util.cache_from_source(name))
        if cached.is_file():
            recipe.files[str(cached)] = cached
    libraries = _ldd([python, *(Path(p) for p in recipe.files if p.endswith(".so") or ".so." in p)])
    # glibc loads libgcc_s itself (thread cancellation), so ldd does not list it for the interpreter.
    for extra in ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/aarch64-linux-gnu/libgcc_s.so.1"):
        if Path(extra).is_file():
            libraries.add(Path(extra))
    for lib in libraries:
        recipe.files.setdefault(str(lib), lib)
    lib_dirs = sorted({str(lib.parent) for lib in libraries})
    recipe.env.update({
        "LD_LIBRARY_PATH": ":".join(lib_dirs),
        "PYTHONPATH": ":".join(site_dirs),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    recipe.entrypoint = [str(python), "-m", "moto.server"]
    recipe.cmd = ["-H", "0.0.0.0", "-p", str(SERVER_PORT["aws"])]
    return recipe


def image_key(kind: str) -> str:
    """What the local image of ``kind`` would be built from now, as a short digest."""
    _check_kind(kind)
    return _moto_key() if kind == "aws" else _binary_key(kind)


def recipe_for(kind: str) -> Recipe:
    """Gather what the local image of ``kind`` holds; ProviderUnavailable (with a hint) when something is missing."""
    _check_kind(kind)
    return _moto_recipe() if kind == "aws" else _binary_recipe(kind)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown service kind {kind!r}; expected one of {', '.join(KINDS)}")


# --- the build context --------------------------------------------------------------------------------------------


def _dir_info(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info


def _bytes_info(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    return info, io.BytesIO(data)


def build_context(recipe: Recipe) -> io.BytesIO:
    """The build context as an in-memory tar: a Dockerfile and ``rootfs/``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(*_bytes_info("Dockerfile", recipe.dockerfile().encode()))
        extra = {"/etc/passwd": _PASSWD.encode(), "/etc/group": _GROUP.encode()}
        dirs = {"/tmp", "/etc"}
        for path in [*recipe.files, *extra]:
            for parent in Path(path).parents:
                if str(parent) != "/":
                    dirs.add(str(parent))
        # Every directory explicitly world-traversable (the host's /root is not), /tmp sticky and writable.
        tar.addfile(_dir_info("rootfs"))
        for d in sorted(dirs):
            tar.addfile(_dir_info("rootfs" + d, 0o1777 if d == "/tmp" else 0o755))
        for name, data in extra.items():
            tar.addfile(*_bytes_info("rootfs" + name, data))
        for name in sorted(recipe.files):
            source = recipe.files[name]
            st = source.stat()  # follows symlinks: the image gets the file itself
            info = tarfile.TarInfo("rootfs" + name)
            info.size = st.st_size
            info.mtime = int(st.st_mtime)
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
            with source.open("rb") as f:
                tar.addfile(info, f)
    buf.seek(0)
    return buf


# --- building -----------------------------------------------------------------------------------------------------


def _client() -> Any:
    return connect()


def _current(client: Any, tag: str, key: str) -> Any | None:
    import docker  # type: ignore[import-untyped, unused-ignore]

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    return image if labels.get(KEY_LABEL) == key else None


def ensure_image(kind: str, client: Any | None = None, force: bool = False) -> str:
    """The tag of an up-to-date local image for ``kind``, building it first if it is missing or stale."""
    _check_kind(kind)
    client = client if client is not None else _client()
    tag = image_tag(kind)
    if not force and _current(client, tag, image_key(kind)) is not None:
        return tag
    build_image(kind, client)
    return tag


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    context_bytes: int
    image_bytes: int
    files: int


def build_image(kind: str, client: Any | None = None) -> Built:
    """Build (or rebuild) the local image for ``kind``; ServiceError with the build's output if it fails."""
    import docker  # type: ignore[import-untyped, unused-ignore]

    _check_kind(kind)
    client = client if client is not None else _client()
    tag = image_tag(kind)
    started = time.monotonic()
    recipe = recipe_for(kind)
    context = build_context(recipe)
    size = len(context.getbuffer())
    log.info("lambdasim: building the local image %s (%d files, %.1f MB context)", tag, len(recipe.files), size / 1e6)
    try:
        old = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        old = None
    output: list[str] = []
    api = client.api
    timeout, api.timeout = api.timeout, BUILD_TIMEOUT_S  # the daemon may read a large context before answering
    try:
        for chunk in api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False,
                               labels={KEY_LABEL: recipe.key, "lambdasim": "image"}, decode=True):
            if "stream" in chunk:
                output.append(str(chunk["stream"]))
            if "error" in chunk:
                tail = "".join(output[-20:]).rstrip()
                raise ServiceError(f"building the local image {tag} failed: {chunk['error'].strip()}\n{tail}")
    except docker.errors.APIError as e:
        raise ServiceError(f"building the local image {tag} failed: {e}") from e
    finally:
        api.timeout = timeout
    seconds = time.monotonic() - started
    image = client.images.get(tag)
    if old is not None and old != image.id:
        # The stale image lost its tag; drop it unless a container still uses it.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old)
    built = Built(tag=tag, seconds=seconds, context_bytes=size, image_bytes=int(image.attrs.get("Size", 0)),
                  files=len(recipe.files))
    log.info("lambdasim: built %s in %.1f s (%.1f MB)", tag, seconds, built.image_bytes / 1e6)
    return built


def main(argv: list[str] | None = None) -> int:
    """Build the local images (all kinds, or those named) and print each tag, build time and size."""
    parser = argparse.ArgumentParser(prog="python -m lambdasim._services.images", description=main.__doc__)
    parser.add_argument("kinds", nargs="*", metavar="KIND", help="redis, memcached and/or aws (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even when an up-to-date image exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kinds: list[str] = args.kinds or ["redis", "memcached", "aws"]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; expected redis, memcached or aws")
    client = _client()
    failed = 0
    for kind in kinds:
        tag = image_tag(kind)
        try:
            if not args.force and _current(client, tag, image_key(kind)) is not None:
                size = int(client.images.get(tag).attrs.get("Size", 0))
                print(f"{tag}: up to date ({size / 1e6:.1f} MB)", flush=True)
                continue
            built = build_image(kind, client)
        except (ProviderUnavailable, ServiceError) as e:
            print(f"{tag}: FAILED: {e}", flush=True)
            failed += 1
            continue
        print(f"{tag}: built in {built.seconds:.1f} s, {built.image_bytes / 1e6:.1f} MB "
              f"({built.files} files, {built.context_bytes / 1e6:.1f} MB context)", flush=True)
    client.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
