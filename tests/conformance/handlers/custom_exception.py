class PaymentDeclined(Exception):
    def __str__(self):
        return "card declined: insufficient funds"


def handler(event, context):
    raise PaymentDeclined("ignored")
