import logging


def handler(event, context):
    print("printed without newline", end="")
    logging.warning("then a record")
    print("printed after")
