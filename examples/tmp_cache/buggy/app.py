"""BUGGY: issues invoice numbers from a counter kept in /tmp.

It looks right when tried by hand: 1, 2, 3... on one warm instance. But /tmp belongs
to one execution environment: a second, concurrent instance starts again at 1 and
hands out the same numbers, and after a scale-down, an idle timeout or a deploy the
counter is gone and numbering restarts. Application state must not live in /tmp.
"""

import os
import time

COUNTER = "/tmp/last_invoice_number"


def handler(event, context):
    last = 0
    if os.path.exists(COUNTER):
        with open(COUNTER) as f:
            last = int(f.read())
    number = last + 1
    with open(COUNTER, "w") as f:
        f.write(str(number))
    time.sleep(float(event.get("sleep", 0)))  # rendering the invoice
    return {"invoice_number": number, "customer": event.get("customer")}
