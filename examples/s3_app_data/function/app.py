"""Orders: the document in S3, an index record in DynamoDB; nothing in /tmp.

Whichever instance takes an order, any other instance, now or after a scale-down,
an idle timeout or a deploy, reads it back: application data lives in services
that outlive execution environments.
"""

import json
import os
import time
import uuid

import boto3

BUCKET = os.environ["ORDERS_BUCKET"]
s3 = boto3.client("s3")
orders = boto3.resource("dynamodb").Table(os.environ["ORDERS_TABLE"])


def create(event):
    order_id = str(uuid.uuid4())
    items = [{"sku": i["sku"], "quantity": int(i["quantity"]), "unit_cents": int(i["unit_cents"])}
             for i in event["items"]]
    total = sum(i["quantity"] * i["unit_cents"] for i in items)
    document = {"order_id": order_id, "customer": event["customer"], "items": items, "total_cents": total}
    key = f"orders/{order_id}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode(), ContentType="application/json")
    orders.put_item(Item={"order_id": order_id, "customer": event["customer"], "total_cents": total,
                          "status": "placed", "document_key": key})
    return {"order_id": order_id, "total_cents": total}


def get(event):
    item = orders.get_item(Key={"order_id": event["order_id"]}, ConsistentRead=True).get("Item")
    if item is None:
        return {"found": False, "order_id": event["order_id"]}
    body = s3.get_object(Bucket=BUCKET, Key=item["document_key"])["Body"].read()
    return {"found": True, "status": item["status"], "total_cents": int(item["total_cents"]),
            "document": json.loads(body)}


def handler(event, context):
    action = event["action"]
    if action == "create":
        result = create(event)
    elif action == "get":
        result = get(event)
    else:
        raise ValueError(f"Unknown action: {action!r}")
    time.sleep(float(event.get("sleep", 0)))  # the rest of the request's work
    return result
