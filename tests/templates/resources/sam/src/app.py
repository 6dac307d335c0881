"""The functions of tests/templates/resources/{sam,serverless}: their environment, and the table as the
function's boto3 sees it, and its name."""

from __future__ import annotations

import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
    if "put" in event:
        table.put_item(Item=event["put"])
    env = {k: v for k, v in os.environ.items() if k.isupper() and not k.startswith(("AWS_", "_", "LAMBDA"))}
    # The function's name on Lambda, each way it sees it.
    named = {"context": context.function_name, "arn": context.invoked_function_arn,
             "env": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "log_group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]}
    return {"env": env, "items": table.scan()["Items"], "named": named}
