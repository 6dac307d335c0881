"""The functions of tests/templates/serverless-models/serverless.yml: what the execution model shows them."""

from __future__ import annotations

import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "tenant_id": getattr(context, "tenant_id", None),
    }
