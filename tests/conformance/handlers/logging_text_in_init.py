import logging

logging.warning("during init")
print("printed during init")


def handler(event, context):
    logging.warning("during the invocation")
