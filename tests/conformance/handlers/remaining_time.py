import time

CASE = {"timeout_s": 2}


def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.2)
    second = context.get_remaining_time_in_millis()
    return [0 < first <= 2000, 150 <= first - second <= 600]
