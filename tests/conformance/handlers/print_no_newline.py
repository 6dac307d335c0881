import sys


def handler(event, context):
    print("no newline", end="")
    sys.stderr.write("and more")
    return "done"
