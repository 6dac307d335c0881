import decimal


def handler(event, context):
    return [decimal.Decimal("1E+2"), decimal.Decimal("-2.5E-3"), decimal.Decimal("Infinity")]
