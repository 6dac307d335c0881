import logging

CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}}


def handler(event, context):
    logging.debug("hidden")
    logging.info("info %s", "arg")
    logging.getLogger("svc.db").warning("warning")
    logging.log(35, "between warning and error")
    logging.critical("critical \u00e9")
