"""POST /orders stores an order; GET /orders/{id} reads it back.

The order ids come from ``shortuuid``, a dependency in requirements.txt: Lambda's runtime does
not have it, so it must be in the deployment package (``sam build`` puts it there; lambdasim
builds it the same way).
"""

import json
import os
from decimal import Decimal

import boto3
import shortuuid

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def _number(value: object) -> object:
    # DynamoDB gives numbers back as Decimal, which json cannot write.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _response(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, default=_number)}


def handler(event, context):
    if event["httpMethod"] == "POST":
        order = {"id": shortuuid.uuid(), **json.loads(event["body"] or "{}")}
        table.put_item(Item=order)
        return _response(201, order)
    found = table.get_item(Key={"id": event["pathParameters"]["id"]}).get("Item")
    if found is None:
        return _response(404, {"message": "no such order"})
    return _response(200, found)
