import logging

CASE = {"env": {"AWS_LAMBDA_LOG_LEVEL": "trace"}}


def handler(event, context):
    logging.debug("debug")
    logging.warning("warning")
