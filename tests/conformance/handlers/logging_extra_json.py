import logging

CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def handler(event, context):
    logging.warning("with extra", extra={"user": "ada", "count": 3, "tags": ["a"], "nothing": None, "odd": {1, 2}})
