"""Orders: POST /orders prices the order with the pricing function, stores it; GET /orders/{id} reads it."""

import json
import os
import uuid

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
lambda_client = boto3.client("lambda")


def price(item: str, quantity: int) -> int:
    response = lambda_client.invoke(FunctionName=os.environ["PRICING_FUNCTION"],
                                    Payload=json.dumps({"item": item, "quantity": quantity}))
    if "FunctionError" in response:
        raise RuntimeError(f"pricing failed: {response['Payload'].read().decode()}")
    return json.loads(response["Payload"].read())["total_cents"]


def handler(event, context):
    if event["requestContext"]["http"]["method"] == "POST":
        order = json.loads(event["body"])
        total = price(order["item"], int(order["quantity"]))
        item = {"id": uuid.uuid4().hex[:8], "item": order["item"], "quantity": int(order["quantity"]),
                "total_cents": total}
        table.put_item(Item=item)
        return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": json.dumps(item)}
    found = table.get_item(Key={"id": event["pathParameters"]["id"]}).get("Item")
    if found is None:
        return {"statusCode": 404, "body": json.dumps({"message": "no such order"})}
    return {"id": found["id"], "item": found["item"], "quantity": int(found["quantity"]),
            "total_cents": int(found["total_cents"])}
