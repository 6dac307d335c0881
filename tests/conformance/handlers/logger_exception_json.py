import logging

CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def parse(text):
    return int(text)


def handler(event, context):
    try:
        parse("x")
    except ValueError:
        logging.getLogger("parser").exception("parse failed")
    return "handled"
