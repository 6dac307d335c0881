import time


def handler(event, context):
    """Sleep (``event["sleep_s"]``, default 0.5 s) so that concurrent invokes each need their own
    instance; return the wall-clock time at which the handler started."""
    started = time.time()
    time.sleep(float(event.get("sleep_s", 0.5)) if isinstance(event, dict) else 0.5)
    return started
