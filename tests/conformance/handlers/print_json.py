import logging

CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def handler(event, context):
    print("plain text stays plain")
    logging.error("a record")
    return {"ok": True}
