"""The Lambda Python runtime, as it runs inside one simulated instance.

It mirrors what ``awslambdaric`` does on Lambda: Init imports the handler module
once, then each invocation decodes the JSON event, calls the handler with a
context object, encodes the result with Lambda's JSON rules and reports errors in
Lambda's shape. It talks to the simulator over one framed channel; everything the
function prints (including subprocesses and C code writing to fd 1/2) lands in a
memfd that is read after each invocation.
"""

from __future__ import annotations

import contextlib
import decimal
import errno
import fcntl
import importlib
import io
import json
import logging
import math
import os
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim._lambda_errors import ErrorDict, make_error
from lambdasim._package import ImportWatch
from lambdasim._sandbox._layout import instance_path
from lambdasim._wire import (
    INIT,
    OUT_OF_MEMORY_AT_INIT,
    RESULT,
    RESULT_LAST,
    Channel,
    Invoke,
    as_last,
    close_all_but,
    pack_fatal,
    pack_init,
    pack_result,
    pack_sandbox_failure,
    reader,
)

if TYPE_CHECKING:  # (not at run time: this runtime also runs on Pythons older than 3.11, see _interpreters)
    from lambdasim._sandbox._spec import InstanceSpec

_THIS_FILE = __file__.rsplit("/", 1)[-1]
_ERROR_INDENT = "\u00a0"
# The real calls, taken before a sandbox may patch ``os`` (the fakefs sandbox does).
_fstat, _pread, _write = os.fstat, os.pread, os.write


class LambdaCognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class LambdaClient:
    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")

    def __init__(self, data: dict[str, Any]) -> None:
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class LambdaClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        client = data.get("client")
        self.client = LambdaClient(client) if client is not None else None
        self.custom = data.get("custom")
        self.env = data.get("env")


_W3C_FIELDS = ("traceparent", "tracestate", "baggage")
# Read from the environment once, at Init, as awslambdaric does.
_CONTEXT_ENV: tuple[str | None, ...] = (None,) * 5


class LambdaContext:
    """The ``context`` argument, with the fields of awslambdaric's LambdaContext."""

    def __init__(
        self,
        request_id: str,
        function_arn: str,
        deadline_ms: int,
        client_context: dict[str, Any] | None,
        identity: dict[str, Any] | None,
        tenant_id: str | None,
    ) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        (self.log_group_name, self.log_stream_name, self.function_name, self.memory_limit_in_mb,
         self.function_version) = _CONTEXT_ENV

        self.tenant_id = tenant_id
        identity = identity or {}
        self.identity = LambdaCognitoIdentity(identity.get("cognitoIdentityId"), identity.get("cognitoIdentityPoolId"))
        self._w3c: dict[str, str] = {}
        if isinstance(client_context, dict) and "w3c" in client_context:
            # The W3C trace context travels in the client context; the runtime takes it out.
            client_context = dict(client_context)
            w3c = client_context.pop("w3c")
            if isinstance(w3c, dict):
                self._w3c = {k: w3c[k] for k in _W3C_FIELDS if isinstance(w3c.get(k), str)}
        self.client_context = LambdaClientContext(client_context) if client_context is not None else None
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The invocation's W3C trace context (``traceparent``, ``tracestate``, ``baggage``)."""
        return dict(self._w3c)

    def log(self, msg: str) -> None:
        # awslambdaric sends this message to Lambda's log as a record of its own.
        write_record(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )


class FaultError(Exception):
    """A ``Runtime.*`` error (one of :mod:`lambdasim._lambda_errors`), as awslambdaric's FaultException."""

    def __init__(self, error: ErrorDict, trace: list[str] | None = None) -> None:
        super().__init__(error["errorMessage"])
        self.error_type: str = error["errorType"]
        self.message: str = error["errorMessage"]
        self.trace = trace or []


HIDDEN_FRAMES: tuple[str, ...] = ()
"""Frames of files starting with these are left out of error traces (the fakefs sandbox's)."""


def _user_frames(tb: Any) -> list[str]:
    frames = traceback.extract_tb(tb)
    tuples = [(f.filename, f.lineno, f.name, f.line) for f in frames
              if not HIDDEN_FRAMES or not f.filename.startswith(HIDDEN_FRAMES)]
    # awslambdaric drops its own leading bootstrap frames; ours are this module's.
    for i, (filename, *_rest) in enumerate(tuples):
        if not filename.endswith(_THIS_FILE):
            tuples = tuples[i:]
            break
    return traceback.format_list(tuples)  # type: ignore[arg-type]


def log_error(error: ErrorDict) -> None:
    """Write the error record the Python runtime writes: ``[ERROR] Type: message`` and the trace
    (lines joined with ``\\r``), or in the JSON log format one object with a timestamp and level."""
    if _json_logs:
        record = {"timestamp": time.strftime(_JSON_TIME, time.gmtime()), "level": "ERROR", **error}
        write_record(_ENCODER.encode(record))
        return
    message = error["errorMessage"]
    lines = [f"[ERROR] {error['errorType']}: {message}" if message else f"[ERROR] {error['errorType']}"]
    if error.get("stackTrace") is not None:  # awslambdaric prints the header even for an empty trace
        lines.append("Traceback (most recent call last):")
        for frame in error["stackTrace"]:
            for line in frame.rstrip("\n").split("\n"):
                stripped = line.lstrip(" ")
                lines.append(_ERROR_INDENT * (len(line) - len(stripped)) + stripped)
    write_record("\r".join(lines))


def log_init_error(error: ErrorDict) -> None:
    """The records of a failed Init: awslambdaric's ``LAMBDA_WARNING`` (a ``logging`` warning of
    the root logger, so the log level can hide it), then the error."""
    logging.warning(lambda_errors.UNHANDLED_EXCEPTION_WARNING)
    log_error(error)


_PLAIN = frozenset({str, int, float, bool, type(None)})
# Where a Decimal's digits go until the text is complete: a string no function returns.
_DIGITS = f"\x00lambdasim-decimal-{os.urandom(8).hex()}\x00"
_DIGITS_JSON = json.dumps(_DIGITS)
_UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 16))


def _needs_shaping(o: Any) -> bool:
    """Whether ``o`` holds what simplejson encodes unlike the standard library: a namedtuple
    (an object, not an array) or a dict key that is not str, int, float, bool or None."""
    if isinstance(o, dict):
        for k, v in o.items():
            if type(k) not in _PLAIN and not isinstance(k, (str, int, float)):
                return True
            if type(v) not in _PLAIN and _needs_shaping(v):
                return True
        return False
    if isinstance(o, (list, tuple)):
        if isinstance(o, tuple) and callable(getattr(o, "_asdict", None)):
            return True
        for v in o:
            if type(v) not in _PLAIN and _needs_shaping(v):
                return True
    return False


def _key(k: Any) -> Any:
    if type(k) in _PLAIN or isinstance(k, (str, int, float)):
        return k
    if isinstance(k, bytes):
        return k.decode("utf-8")
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def _as_dict(o: Any) -> dict[Any, Any]:
    d = o._asdict()
    if not isinstance(d, dict):
        raise TypeError(f"_asdict() must return a dict, not {type(d).__name__}")
    return d


def _shaped(o: Any) -> Any:
    """``o`` with namedtuples as dicts and bytes keys as text, as simplejson writes them."""
    if isinstance(o, tuple) and callable(getattr(o, "_asdict", None)):
        o = _as_dict(o)
    if isinstance(o, dict):
        return {_key(k): v if type(v) in _PLAIN else _shaped(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [v if type(v) in _PLAIN else _shaped(v) for v in o]
    return o


class Encoder(json.JSONEncoder):
    """Lambda's Python JSON: what awslambdaric writes with simplejson, from the standard library's
    C encoder. A ``Decimal`` keeps its digits (``1.10``, ``1E+2``; NaN is ``NaN``), ``bytes`` are
    UTF-8 text, a namedtuple (or anything with ``_asdict``) is an object, bytes keys are text; and
    non-ASCII text is escaped except on the Python 3.12+ runtimes (by ``AWS_EXECUTION_ENV``)."""

    def __init__(self, execution_env: str | None = None) -> None:
        super().__init__(ensure_ascii=execution_env not in _UNESCAPED_ENVS, allow_nan=True)
        self.digits: list[str] = []

    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return math.nan
            self.digits.append(str(o))
            return _DIGITS
        if isinstance(o, bytes):
            return o.decode("utf-8")
        if callable(getattr(o, "_asdict", None)):
            return _shaped(_as_dict(o))
        return super().default(o)

    def encode(self, o: Any) -> str:
        if type(o) not in _PLAIN:
            try:
                if _needs_shaping(o):
                    o = _shaped(o)
            except RecursionError:
                pass  # a circular structure: the encoder says so
        self.digits = []
        text = super().encode(o)
        if self.digits:
            parts = text.split(_DIGITS_JSON)
            # (Not zip(..., strict=True): this runtime runs on Python 3.9 too, see _interpreters.)
            text = parts[0] + "".join(self.digits[i] + p for i, p in enumerate(parts[1:]))
            self.digits = []
        return text


_ENCODER = Encoder()


def load_handler(handler: str) -> Callable[..., Any]:
    """Import the handler module (Init) and return the handler function."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultError(lambda_errors.malformed_handler_name(handler, e)) from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultError(lambda_errors.builtin_module_conflict(modname))
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultError(lambda_errors.import_module_error(modname, e)) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise FaultError(lambda_errors.user_code_syntax_error(modname, e), trace) from None
    try:
        fn = getattr(module, fname)
    except AttributeError:
        raise FaultError(lambda_errors.handler_not_found(fname, modname)) from None
    return fn  # type: ignore[no-any-return]


class _RequestIdFilter(logging.Filter):
    request_id = ""
    tenant_id: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _RequestIdFilter.request_id
        record.tenant_id = _RequestIdFilter.tenant_id
        return True


_JSON_TIME = "%Y-%m-%dT%H:%M:%SZ"
# LogRecord attributes that are not ``extra=`` fields (awslambdaric's list).
_RECORD_FIELDS = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text",
    "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
    "processName", "process", "aws_request_id", "tenant_id", "_frame_type",
})
# Values JSON cannot hold are written as their str(), so that no record is lost.
_encode_record = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonFormatter(logging.Formatter):
    """A ``logging`` record as one JSON object, as the Python runtime writes it in the JSON log
    format: ``timestamp`` (seconds), ``level`` (rounded down to a standard level), ``message``
    (a dict message stays an object), ``logger``, ``requestId``, with an exception ``stackTrace``,
    ``errorType``, ``errorMessage`` and ``location``; ``tenantId``, the ``extra=`` fields; no nulls."""

    def __init__(self) -> None:
        super().__init__(datefmt=_JSON_TIME)

    def format(self, record: logging.LogRecord) -> str:
        record.levelno = min(50, max(0, record.levelno)) // 10 * 10
        record.levelname = logging.getLevelName(record.levelno)
        exc = record.exc_info
        fields: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc[2]) if exc else None,
            "errorType": exc[0].__name__ if exc and exc[0] else None,
            "errorMessage": str(exc[1]) if exc else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc else None,
        }
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            fields["tenantId"] = tenant
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in fields:
                fields[key] = value
        return _encode_record({k: v for k, v in fields.items() if v is not None}) + "\n"


_json_logs = False
"""Whether the function's log format is JSON (``AWS_LAMBDA_LOG_FORMAT``), read at Init."""


class LogCapture:
    """fd 1 and 2 point at one memfd in append mode; read and reset per invocation."""

    def __init__(self, adopt: bool = False) -> None:
        if adopt:  # a runtime started with its log as fd 1 and 2 (lambdasim._runtime_http)
            self.fd = 1
            self._wrap_std()
            return
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("lambda-log", os.MFD_CLOEXEC)
        else:  # macOS: an unlinked temporary file does the same
            import tempfile

            with tempfile.TemporaryFile() as f:
                self.fd = os.dup(f.fileno())
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_APPEND)
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        self._wrap_std()

    @staticmethod
    def _wrap_std() -> None:
        # Lambda's runtime wraps stdout/stderr so every write reaches the log at once.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)

    def attach_stdin(self) -> None:
        """stdin reads the instance's /dev/null (once its root is in place)."""
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")

    def end_line(self) -> None:
        """End the log's last line, if something (``print(..., end="")``, C code) left it open."""
        try:
            size = _fstat(self.fd).st_size
            if size and _pread(self.fd, 1, size - 1) != b"\n":
                _write(self.fd, b"\n")
        except OSError:
            pass  # not a file (a pipe): nothing to look back at


_capture: LogCapture | None = None


def write_record(text: str, stream: Any = None) -> None:
    """Write one log record, on lines of its own.

    On Lambda, awslambdaric sends each ``logging`` record (and each error record) to the
    log as a separate event, apart from what the function prints; in the one stream that
    lambdasim keeps, a record starts on a new line and ends with a newline, so that it
    runs neither into text printed without a newline nor into the next record.
    """
    if _capture is not None:
        _capture.end_line()
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")


class _RecordHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler: awslambdaric's text format, one record each (see write_record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_record(self.format(record), self.stream)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own rule: a failed record is reported, not raised
            self.handleError(record)


def setup_logging() -> None:
    """The root logger as the Python runtime sets it up, from ``AWS_LAMBDA_LOG_FORMAT`` and
    ``AWS_LAMBDA_LOG_LEVEL`` (a level name, or ``TRACE`` for DEBUG; else logging's WARNING)."""
    global _json_logs, _ENCODER
    _ENCODER = Encoder(os.environ.get("AWS_EXECUTION_ENV"))
    _json_logs = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    logging.Formatter.converter = time.gmtime
    handler = _RecordHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if _json_logs else logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "")
    level = "DEBUG" if level == "TRACE" else level.upper()
    root.setLevel(logging.getLevelNamesMapping().get(level, logging.WARNING) if level else logging.WARNING)


def usable_cpus() -> int:
    """CPUs this process may run on (all of them where affinity is unknown, as on macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _max_memory_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Coverage:
    """coverage.py inside the instance: lines of the function's code, sent to the simulator
    after Init and after each invocation (the instance cannot write the host's data file).

    It is the harness's instrument, not the function's: its warnings (``No data was
    collected`` after an Init that ran no line of the code, say) are silenced, so they
    never reach the function's stderr and logs. The host's coverage.py reports for real.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        import coverage

        with self._quiet():
            self.cov = coverage.Coverage(data_file=None, config_file=False, branch=bool(settings.get("branch")),
                                         include=["/var/task/*", "/opt/*"])
            self.cov.start()

    @staticmethod
    @contextlib.contextmanager
    def _quiet() -> Iterator[None]:
        import warnings

        from coverage.exceptions import CoverageWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CoverageWarning)
            yield

    def take(self) -> dict[str, Any]:
        with self._quiet():
            data = self.cov.get_data()
        files = data.measured_files()
        if data.has_arcs():
            return {"arcs": {f: sorted(data.arcs(f) or ()) for f in files}}
        return {"lines": {f: sorted(data.lines(f) or ()) for f in files}}


def host_tmp_path(path: str) -> str:
    """Where a host path under /tmp is mounted inside an instance (other paths stay put);
    see :func:`lambdasim._sandbox._layout.instance_path`."""
    return instance_path(path)


def relocate_host_tmp() -> None:
    """Point this interpreter at its Python files' new home when they lived under /tmp.

    sys.path, sys.prefix and friends, and the modules already imported (their
    __file__, __path__ and loaders, which later imports and tracebacks use) move
    with them; the instance's own /tmp then holds only what the function writes.
    """
    move = host_tmp_path
    under_tmp = [p for p in (*sys.path, sys.prefix, sys.base_prefix, sys.executable) if p.startswith("/tmp/")]
    if not under_tmp:
        return  # the usual case: nothing to do, and nothing touched (each write copies a page)

    def moved(paths: list[str]) -> None:
        if any(p.startswith("/tmp/") for p in paths):
            paths[:] = [move(p) for p in paths]

    sys.path[:] = [move(p) for p in sys.path]
    for name in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix", "executable"):
        setattr(sys, name, move(getattr(sys, name)))
    for key in [k for k in sys.path_importer_cache if k == "/tmp" or k.startswith("/tmp/")]:
        del sys.path_importer_cache[key]
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith("/tmp/"):
            module.__file__ = move(file)
        path = getattr(module, "__path__", None)
        if isinstance(path, list):
            moved(path)
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            if isinstance(spec.origin, str) and spec.origin.startswith("/tmp/"):
                spec.origin = move(spec.origin)
            if isinstance(spec.submodule_search_locations, list):
                moved(spec.submodule_search_locations)
        loader = getattr(module, "__loader__", None)
        loader_path = getattr(loader, "path", None)
        if isinstance(loader_path, str) and loader_path.startswith("/tmp/"):
            with contextlib.suppress(AttributeError):
                loader.path = move(loader_path)  # type: ignore[union-attr]


# -- /tmp provenance (opt-in: spec["track_tmp_access"]) -------------------------------------


class TmpAccess:
    """Which /tmp files Init and each invocation read and wrote, for the simulator's writer map.

    An audit hook sees ``open`` (reads, and writes by mode w, a, x or +), ``os.rename``,
    ``os.remove``, ``os.truncate``, ``os.link``, ``os.symlink`` and ``shutil.rmtree``;
    ``os.stat`` (and so ``os.path.exists`` and ``pathlib``'s checks) is wrapped, since an
    existence check is the most common way to depend on an earlier invocation's file.
    Only Python-level access is seen (not subprocesses or C code), and audit hooks cannot
    be removed: this is installed only in runtimes of simulators that track access.
    """

    __slots__ = ("changes", "reads")

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}  # read before this invocation changed them, in order
        self.changes: dict[str, bool] = {}  # True: written; False: removed

    def take(self) -> tuple[list[str], dict[str, bool]]:
        taken = (list(self.reads), self.changes)
        self.reads = {}
        self.changes = {}
        return taken

    @staticmethod
    def _tmp(path: object) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return None  # a file descriptor
        path = os.path.normpath(path if path.startswith("/") else os.path.join(os.getcwd(), path))
        return path if path.startswith("/tmp/") else None

    def read(self, path: object) -> None:
        tmp = self._tmp(path)
        if tmp is not None and tmp not in self.changes:
            self.reads[tmp] = None

    def change(self, path: object, written: bool = True) -> None:
        tmp = self._tmp(path)
        if tmp is not None:
            self.changes[tmp] = written

    def _open(self, args: tuple[Any, ...]) -> None:
        path, _mode, flags = args
        if not isinstance(flags, int) or flags & os.O_DIRECTORY:
            return  # a directory (or O_TMPFILE, which creates no name)
        access = flags & os.O_ACCMODE
        if access != os.O_WRONLY and not flags & os.O_TRUNC:
            self.read(path)
        if access != os.O_RDONLY or flags & (os.O_CREAT | os.O_TRUNC):
            self.change(path)

    def _rename(self, args: tuple[Any, ...]) -> None:
        self.change(args[0], False)
        self.change(args[1])

    def install(self) -> None:
        handlers: dict[str, Callable[[tuple[Any, ...]], None]] = {
            "open": self._open,
            "os.rename": self._rename,
            "os.remove": lambda args: self.change(args[0], False),
            "shutil.rmtree": lambda args: self.change(args[0], False),
            "os.truncate": lambda args: self.change(args[0]),
            "os.link": lambda args: self.change(args[1]),
            "os.symlink": lambda args: self.change(args[1]),
        }
        get = handlers.get

        def hook(event: str, args: tuple[Any, ...]) -> None:
            handler = get(event)
            if handler is not None:
                # An exception here would fail the function's own call.
                with contextlib.suppress(Exception):
                    handler(args)

        sys.addaudithook(hook)
        real_stat = os.stat
        read = self.read

        def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            result = real_stat(path, *args, **kwargs)
            if kwargs.get("dir_fd") is None and isinstance(path, (str, bytes, os.PathLike)):
                read(os.fspath(path))
            return result

        for supports in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks):
            if real_stat in supports:
                supports.add(stat)  # shutil and others test these sets for os.stat
        os.stat = stat


class TmpAccessChannel(Channel):
    """The runtime's channel when access is tracked: ``Init`` and ``Result`` messages carry it, last."""

    __slots__ = ("access",)

    def __init__(self, sock: socket.socket, access: TmpAccess) -> None:
        super().__init__(sock)
        self.access = access

    def send(self, message: Any, fds: list[int] | None = None) -> None:
        if message[0] in (INIT, RESULT, RESULT_LAST):
            message = (*message, self.access.take())
        super().send(message, fds)


# -- refused addresses (network="isolated") ---------------------------------------------------------

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "localhost4", "localhost6", "0.0.0.0", "::", "::1"})
_TCP_LISTEN = "0A"
_MAX_NOTED = 100  # distinct addresses noted per Init or invocation; more are refused all the same


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def _listening_ports() -> set[int]:
    """TCP ports listened on in this network namespace (the namespace sandbox's: its own)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if len(fields) > 3 and fields[3] == _TCP_LISTEN:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class NetworkWatch:
    """The connections and lookups of Python code that cannot succeed under ``network="isolated"``,
    for the simulator (``refused_addresses``): connections to anywhere but the loopback, to loopback
    ports nothing listens on, and lookups of names other than localhost's. ``own_listeners``: only
    sockets this process bound count as listeners (the fakefs sandbox's, on the host's loopback,
    which sees them through its ``socket.bind`` events); else any in the instance's namespace.

    Python-level calls only (``socket.connect``, ``socket.getaddrinfo`` audit events): C code and
    subprocesses are not seen, though the namespace sandbox's kernel refuses them all the same.
    """

    __slots__ = ("bound", "forwarded", "own_listeners", "refused")

    def __init__(self, forward: list[Any], own_listeners: bool = False) -> None:
        import weakref

        self.forwarded = frozenset(int(address[1]) for address in forward)  # (host, port[, "udp"])
        self.own_listeners = own_listeners
        self.bound: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.refused: dict[str, int] = {}

    def _listening(self, port: int) -> bool:
        if not self.own_listeners:
            return port in _listening_ports()
        for sock in list(self.bound):
            with contextlib.suppress(OSError):
                if sock.fileno() >= 0 and sock.getsockname()[1] == port:
                    return True
        return False

    def take(self) -> dict[str, int] | None:
        taken, self.refused = self.refused, {}
        return taken or None

    def check(self, event: str, args: tuple[Any, ...]) -> int:
        """The errno with which the kernel of an isolated instance refuses ``event`` (0: none), the
        address noted; for socket.getaddrinfo, EAI_AGAIN's."""
        if event == "socket.connect":
            sock, address = args
            if not isinstance(address, tuple) or len(address) < 2 or not isinstance(address[0], str):
                return 0  # a Unix socket's path, or something the call itself refuses
            host, port = address[0], address[1]
            if not isinstance(port, int):
                return 0
            where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            if host.startswith("127.") or host in _LOCAL_NAMES:
                if port in self.forwarded or getattr(sock, "type", None) != socket.SOCK_STREAM:
                    return 0
                if self._listening(port):
                    return 0
                code = errno.ECONNREFUSED
            else:
                code = errno.ENETUNREACH
        elif event == "socket.getaddrinfo":
            given, port = args[0], args[1]
            host = given.decode("ascii", "replace") if isinstance(given, bytes) else given
            if not isinstance(host, str) or not host or host in _LOCAL_NAMES or _is_ip(host):
                return 0
            where = f"{host}:{port}" if port not in (None, 0, "", b"") else host
            code = socket.EAI_AGAIN
        else:
            if event == "socket.bind" and self.own_listeners and isinstance(args[0], socket.socket):
                self.bound.add(args[0])
            return 0
        if where in self.refused or len(self.refused) < _MAX_NOTED:
            self.refused[where] = self.refused.get(where, 0) + 1
        return code

    def install(self) -> None:
        """Watch this process's connections and lookups (the namespace sandbox's: its kernel refuses them)."""
        check = self.check

        def hook(event: str, args: tuple[Any, ...]) -> None:
            # Called for every audit event the process raises: two comparisons for all the others.
            if event == "socket.connect" or event == "socket.getaddrinfo":
                with contextlib.suppress(Exception):
                    check(event, args)

        sys.addaudithook(hook)


network_watch: NetworkWatch | None = None
"""This runtime's watch, under ``network="isolated"`` (the fakefs sandbox's audit hook refuses through it)."""


_read_invoke = reader(Invoke, "request_id", "event", "deadline_ms", "trace_id", "client_context", "identity",
                      "tenant_id", "function_arn", "spin")


def start_init(capture: LogCapture) -> None:
    """What Init sets up before the function's code, from the environment (already the function's)."""
    global _capture, _CONTEXT_ENV
    _capture = capture
    setup_logging()
    _CONTEXT_ENV = tuple(os.environ.get(k) for k in (
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"))


def init_function(handler: str) -> tuple[Callable[..., Any] | None, ErrorDict | None]:
    """Init's import of the handler: the function, or the error (already logged, but for running
    out of memory, which the simulator reports)."""
    error: ErrorDict | None = None
    try:
        return load_handler(handler), None
    except FaultError as e:
        error = make_error(e.message, e.error_type, e.trace, "")
    except MemoryError:
        return None, OUT_OF_MEMORY_AT_INIT
    except Exception as e:  # noqa: BLE001 - any import-time exception fails Init, as on Lambda
        error = make_error(str(e), type(e).__name__, _user_frames(e.__traceback__), "")
    log_init_error(error)
    return None, error


def begin_invocation(request_id: str, trace_id: str | None, tenant_id: str | None) -> None:
    """What the runtime sets for each invocation before the handler runs."""
    if trace_id is None:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    else:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    _RequestIdFilter.request_id = request_id
    _RequestIdFilter.tenant_id = tenant_id


def call_handler(fn: Callable[..., Any], event: bytes, context: LambdaContext) -> tuple[bytes | None, ErrorDict | None]:
    """Call the handler: its response in Lambda's JSON (bytes as they are) or its error, in Lambda's
    shape. ``SystemExit`` ends the process with its code, as it ends awslambdaric's; running out
    of memory raises :class:`MemoryError` (the caller reports ``Runtime.OutOfMemory``)."""
    request_id = context.aws_request_id
    try:
        result = fn(json.loads(event), context)
        if isinstance(result, bytes):
            return result, None
        try:
            return _ENCODER.encode(result).encode(), None
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever the encoder raises is a marshal error
            fault = lambda_errors.marshal_error(e)
            return None, make_error(fault["errorMessage"], fault["errorType"], [], request_id)
    except MemoryError:
        raise
    except SystemExit as e:
        sys.stdout.flush()
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            sys.stderr.write(f"{e.code}\n")
        os._exit(code)
    except Exception as e:  # noqa: BLE001 - every handler exception becomes a Lambda error
        return None, make_error(str(e), type(e).__name__, _user_frames(e.__traceback__), request_id)


def log_invocation_error(error: ErrorDict) -> None:
    # awslambdaric's records do not go through fd 1 and 2; a function that closed them
    # still gets its error reported.
    with contextlib.suppress(OSError, ValueError):
        log_error(error)


def run(sock: socket.socket, spec: InstanceSpec, enter: Callable[[], None] | None = None,
        logs: LogCapture | None = None, checkpoint: Callable[[], None] | None = None,
        snapshot: Any = None) -> None:
    """Run Init, then serve invocations until the channel closes. Never returns.

    ``enter``, when given, is called after the setup that needs no filesystem and
    before anything that does: the sandbox may still be building this instance's
    root while the runtime prepares, and ``enter`` waits for it and moves in.
    ``checkpoint``, when given, is called before each answer to the simulator (the
    fakefs sandbox mirrors /tmp to the host there). ``snapshot`` (SnapStart, a ``_sandbox._restore.Snapshotter``)
    runs the before-snapshot hooks after Init, then serves restores; it returns in each restored runtime.
    """
    started = time.perf_counter()
    access = TmpAccess() if spec.get("track_tmp_access") else None
    global network_watch
    net = network_watch = (NetworkWatch(spec.get("forward", []), own_listeners=bool(spec.get("refuse_network")))
                           if spec.get("network") == "isolated" else None)
    chan = Channel(sock) if access is None else TmpAccessChannel(sock, access)
    if logs is None:
        logs = LogCapture()
    os.environ.clear()
    os.environ.update(spec["env"])
    sys.path[:0] = spec["sys_path_prefix"]
    start_init(logs)
    if enter is not None:
        try:
            enter()
        except Exception as e:  # noqa: BLE001 - the sandbox failed, not the function: the simulator says so
            chan.send(pack_sandbox_failure(reason=f"{type(e).__name__}: {e}"))
            os._exit(70)
    relocate_host_tmp()
    close_all_but([sock.fileno(), logs.fd])
    logs.attach_stdin()
    os.chdir(spec.get("real_cwd", spec["cwd"]))
    if not spec.get("memory_by_use"):  # the fakefs sandbox's limit: data segments per process
        memory = (spec["memory_mb"] + spec.get("extra_memory_mb", 0)) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    tasks = spec.get("tasks_rlimit")
    if tasks:
        # Counted per user and user namespace, and each instance has a namespace of its own.
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    if access is not None:
        access.install()  # from here on: what Init, then each invocation, reads and writes in /tmp
    if net is not None and not spec.get("refuse_network"):
        net.install()  # (the fakefs sandbox's own audit hook refuses through it instead)

    settings = spec.get("coverage")
    measure = _Coverage(settings) if settings else None
    imports = ImportWatch(["/opt", *spec["sys_path_prefix"]], spec.get("package") == "strict")
    imports.install()  # from here on: the function's imports from outside its package (_package)
    fn, error = init_function(spec["handler"])
    if snapshot is not None and error is None:
        error = snapshot.before_snapshot()
    init_ms = (time.perf_counter() - started) * 1000.0
    if checkpoint is not None:
        checkpoint()
    # The simulator reads the log memfd itself, so output survives a timeout or crash.
    chan.send(pack_init(error=error, init_ms=init_ms, max_memory_kb=_max_memory_kb(),
                        coverage=measure.take() if measure else None, refused=net.take() if net else None,
                        outside_imports=imports.take()), fds=[logs.fd])
    if error is not None or fn is None:
        os._exit(1)  # awslambdaric exits after reporting an Init error
    if snapshot is not None:  # returns in a restored runtime, with its own channel and log
        chan, logs = snapshot.hold(chan, logs, lambda s: Channel(s) if access is None else TmpAccessChannel(s, access))
        started = time.perf_counter()
        error = snapshot.after_restore()
        restore_ms = (time.perf_counter() - started) * 1000.0
        if checkpoint is not None:
            checkpoint()
        chan.send(pack_init(error=error, init_ms=restore_ms, max_memory_kb=_max_memory_kb(),
                            coverage=measure.take() if measure else None, refused=net.take() if net else None,
                            outside_imports=imports.take()), fds=[logs.fd])
        if error is not None:
            os._exit(65)  # as awslambdaric after a failed after-restore hook

    while True:
        try:
            msg = chan.recv()
        except EOFError:
            os._exit(0)
        request_id, event, deadline_ms, trace_id, client_context, identity, tenant_id, arn, spin = _read_invoke(msg)
        begin_invocation(request_id, trace_id, tenant_id)
        context = LambdaContext(request_id, arn, deadline_ms, client_context, identity, tenant_id)
        t0 = time.perf_counter()
        fatal = ""
        try:
            payload, err = call_handler(fn, event, context)
        except MemoryError:
            payload, err, fatal = None, None, lambda_errors.RUNTIME_OUT_OF_MEMORY
        duration = (time.perf_counter() - t0) * 1000.0
        if err is not None:
            log_invocation_error(err)
        elif payload is not None and len(payload) > lambda_errors.MAX_RESPONSE_BYTES:
            # Said here, not sent: the simulator takes frames of a bounded size only. awslambdaric's
            # post fails (413) and raises: after the answer its process ends, and so does this one.
            err, fatal = lambda_errors.response_too_large_sized(len(payload)), "exit"
            payload = None
        if checkpoint is not None:
            checkpoint()
        if fatal and fatal != "exit":
            chan.send(pack_fatal(error_type=fatal, duration_ms=duration, max_memory_kb=_max_memory_kb()))
            os._exit(137)
        reply = pack_result(payload=payload, error=err, duration_ms=duration, max_memory_kb=_max_memory_kb(),
                            coverage=measure.take() if measure else None, refused=net.take() if net else None,
                            outside_imports=imports.take())
        chan.send(as_last(reply) if fatal else reply)
        if fatal:
            os._exit(1)
        if spin and usable_cpus() > 1:
            chan.spin(spin)  # the simulator may be about to send the next invocation
