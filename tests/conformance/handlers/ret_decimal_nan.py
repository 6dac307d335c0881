import decimal


def handler(event, context):
    return [decimal.Decimal("NaN"), decimal.Decimal("-NaN"), decimal.Decimal("sNaN")]
