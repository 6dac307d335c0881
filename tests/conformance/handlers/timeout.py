import time

CASE = {"timeout_s": 1}


def handler(event, context):
    print("starting")
    time.sleep(5)
