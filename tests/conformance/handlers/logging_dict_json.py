import logging

CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def handler(event, context):
    logging.warning({"event": "order", "total": 12.5})
    logging.warning({"event": "%s"}, "with args")
    logging.warning(["a", "list"])
