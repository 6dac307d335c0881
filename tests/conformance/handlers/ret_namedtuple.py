import collections

Point = collections.namedtuple("Point", "x y")


def handler(event, context):
    return {"point": Point(1, Point(2, (3, 4))), "points": [Point(5, 6)]}
