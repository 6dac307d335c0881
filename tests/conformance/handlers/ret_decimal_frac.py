import decimal


def handler(event, context):
    return {"price": decimal.Decimal("1.10"), "rate": decimal.Decimal("0.000")}
