import logging

CASE = {"env": {"AWS_LAMBDA_LOG_LEVEL": "DEBUG"}}


def handler(event, context):
    logging.debug("debug")
    logging.info("info")
    logging.getLogger("lib").warning("warning")
