import logging


def handler(event, context):
    try:
        print(1 / 0)
    except ZeroDivisionError:
        logging.exception("division failed")
    return "handled"
