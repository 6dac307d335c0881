"""Renders a report into /tmp on every invocation and never deletes it.

/tmp belongs to one execution environment and is kept between its warm invocations; it is
small (``ephemeral_storage_mb``, 512 MB by default). Each invocation leaves its report
behind, so a busy warm instance fills /tmp up after enough traffic, and from then on every
invocation on it fails with ``OSError: [Errno 28] No space left on device`` (until the
instance is replaced). Tests that invoke the function a few times never see it.
"""

import os

REPORTS = "/tmp/reports"
MB = b"r" * (1 << 20)


def handler(event, context):
    os.makedirs(REPORTS, exist_ok=True)
    path = os.path.join(REPORTS, f"report-{context.aws_request_id}.csv")
    with open(path, "wb") as f:
        for _ in range(event.get("mb", 8)):
            f.write(MB)
    # ... upload the report, e.g. s3.upload_file(path, ...) ... and the file stays in /tmp.
    return {"report_mb": event.get("mb", 8), "reports_in_tmp": len(os.listdir(REPORTS))}
