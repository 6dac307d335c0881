"""A throw-away Runtime API in the test process, to run awslambdaric until lambdasim's own works.

Not the real path: no sandbox, the code directory at its own path (normalised to /var/task).
"""

from __future__ import annotations

import http.server
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any


class _Api(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.posts: queue.Queue[tuple[str, bytes, dict[str, str]]] = queue.Queue()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Api

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        inv = self.server.events.get()
        body = inv["event"]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", inv["request_id"])
        self.send_header("Lambda-Runtime-Deadline-Ms", str(inv["deadline_ms"]))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", inv["arn"])
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
        if inv.get("client_context") is not None:
            self.send_header("Lambda-Runtime-Client-Context", json.dumps(inv["client_context"]))
        if inv.get("identity") is not None:
            self.send_header("Lambda-Runtime-Cognito-Identity", json.dumps(inv["identity"]))
        if inv.get("tenant_id") is not None:
            self.send_header("Lambda-Runtime-Aws-Tenant-Id", inv["tenant_id"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        kind = self.path.rsplit("/", 1)[-1]
        too_large = kind == "response" and length > 6 * 1024 * 1024 + 100
        self.server.posts.put(("too_large" if too_large else kind, body, dict(self.headers)))
        reply = b'{"status":"OK"}' if not too_large else b'{"errorType":"Function.ResponseSizeTooLarge"}'
        self.send_response(413 if too_large else 202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class Outcome:
    def __init__(self, payload: bytes | None, error: dict[str, Any] | None, logs: str, cold: bool,
                 request_id: str) -> None:
        self.raw_payload, self.error, self.logs = payload, error, logs
        self.cold_start, self.request_id = cold, request_id


def run_ric(handler: str, code_dir: Path, env: dict[str, str], invocations: list[dict[str, Any]],
            timeout_s: float) -> list[Outcome]:
    api = _Api()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    log = code_dir.parent / f"{code_dir.name}.log"
    outcomes: list[Outcome] = []
    proc: subprocess.Popen[bytes] | None = None
    pos = 0

    def take() -> str:
        nonlocal pos
        data = log.read_bytes()[pos:]
        pos += len(data)
        text = data.decode("utf-8", "replace").replace(str(code_dir), "/var/task")
        return text if not text or text.endswith("\n") else text + "\n"

    try:
        for inv in invocations:
            cold = proc is None or proc.poll() is not None
            init_logs = ""
            if cold:
                if proc is not None:
                    proc.kill()
                with open(log, "ab") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "awslambdaric", handler], cwd=code_dir, stdout=out, stderr=out,
                        stdin=subprocess.DEVNULL,
                        env={**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
                             "PYTHONPATH": str(code_dir)})
            request_id = str(uuid.uuid4())
            api.events.put({**inv, "request_id": request_id, "deadline_ms": int((time.time() + timeout_s) * 1000),
                            "event": json.dumps(inv["event"]).encode()})
            assert proc is not None
            deadline = time.monotonic() + timeout_s
            got: tuple[str, bytes, dict[str, str]] | None = None
            while time.monotonic() < deadline:
                try:
                    got = api.posts.get(timeout=0.02)
                    break
                except queue.Empty:
                    if proc.poll() is not None:
                        break
            time.sleep(0.05)
            if got is None and proc.poll() is None:
                proc.kill()
                proc.wait()
                error = {"errorType": "Sandbox.Timedout",
                         "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"}
                outcomes.append(Outcome(None, error, init_logs + take(), cold, request_id))
                api.events = queue.Queue()
                continue
            if got is None:
                proc.wait()
                code = proc.returncode
                error = {"errorType": "Runtime.ExitError",
                         "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                                         f"exit status {code}"}
                outcomes.append(Outcome(None, error, init_logs + take(), cold, request_id))
                api.events = queue.Queue()
                continue
            kind, body, _headers = got
            if kind == "response":
                outcomes.append(Outcome(body, None, take(), cold, request_id))
            elif kind == "too_large":
                outcomes.append(Outcome(None, {"errorType": "Function.ResponseSizeTooLarge"}, take(), cold, request_id))
            else:  # error or init error
                err = json.loads(body.decode().replace(str(code_dir), "/var/task"))
                outcomes.append(Outcome(None, err, take(), cold, request_id))
                if err.get("requestId") == "":  # init error: the runtime exits
                    proc.wait()
                    api.events = queue.Queue()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        api.shutdown()
    return outcomes
