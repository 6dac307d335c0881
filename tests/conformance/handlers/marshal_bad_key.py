import decimal


def handler(event, context):
    return {decimal.Decimal("1"): "decimal key"}
