"""A small function that shows Lambda's filesystem: /tmp works, everything else is read-only."""

import json
import os
import time

STARTED = time.time()  # module globals live as long as the execution environment


def handler(event, context):
    name = (event or {}).get("name", "world")
    # /tmp is the only writable place and it is kept between warm invocations.
    counter = "/tmp/invocations"
    count = 1
    if os.path.exists(counter):
        with open(counter) as f:
            count = int(f.read()) + 1
    with open(counter, "w") as f:
        f.write(str(count))
    # Writing anywhere else fails, exactly as on Lambda.
    try:
        with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "cache.json"), "w") as f:
            json.dump({}, f)
        code_dir = "writable (not like Lambda!)"
    except OSError as e:
        code_dir = str(e)
    print(f"hello {name}, invocation {count} of this instance")
    return {
        "message": f"Hello, {name}!",
        "invocations_in_this_instance": count,
        "write_to_code_dir": code_dir,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function": context.function_name,
    }
