# The restore benchmark's function: a no-op handler whose Init leaves a small /tmp (8 files of 4 KiB).
import os

os.makedirs("/tmp/cache", exist_ok=True)
for i in range(8):
    with open(f"/tmp/cache/part{i}", "wb") as f:
        f.write(bytes(4096))


def handler(event, context):
    return None
