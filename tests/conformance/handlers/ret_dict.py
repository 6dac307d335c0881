def handler(event, context):
    return {"statusCode": 200, "body": "ok", "nested": {"list": [1, 2], "event": event}}
