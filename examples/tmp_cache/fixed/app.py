"""FIXED: issues invoice numbers from an atomic counter in DynamoDB.

The counter is application data, so it lives in a database that every instance,
every version and every future execution environment shares. ``ADD`` is atomic, so
concurrent instances never get the same number.
"""

import os
import time

import boto3

counters = boto3.resource("dynamodb").Table(os.environ["COUNTERS_TABLE"])


def next_invoice_number():
    response = counters.update_item(
        Key={"name": "invoice"},
        UpdateExpression="ADD last_value :one",
        ExpressionAttributeValues={":one": 1},
        ReturnValues="UPDATED_NEW",
    )
    return int(response["Attributes"]["last_value"])


def handler(event, context):
    number = next_invoice_number()
    time.sleep(float(event.get("sleep", 0)))  # rendering the invoice
    return {"invoice_number": number, "customer": event.get("customer")}
