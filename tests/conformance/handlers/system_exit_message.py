import sys


def handler(event, context):
    sys.exit("fatal: giving up")
