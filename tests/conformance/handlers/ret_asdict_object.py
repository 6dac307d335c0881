class Record:
    def _asdict(self):
        return {"kind": "record", "values": (1, 2)}


def handler(event, context):
    return [Record()]
