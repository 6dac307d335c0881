"""The OrdersFunction of tests/templates/sam/template.yaml."""

from __future__ import annotations

import importlib
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    greeting = importlib.import_module("greeting")  # from the SharedLayer, at /opt/python
    names = ("STAGE", "LOG_LEVEL", "TABLE_NAME", "TABLE_ARN", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    return {
        "greeting": greeting.greet(event.get("name", "world")),
        "env": {name: os.environ.get(name) for name in names},
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
