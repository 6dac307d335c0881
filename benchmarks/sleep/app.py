import time


def handler(event, context):
    time.sleep(event.get("sleep_s", 0.5) if isinstance(event, dict) else 0.5)
    return None
