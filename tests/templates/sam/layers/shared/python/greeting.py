"""A module of the SharedLayer of tests/templates/sam/template.yaml."""


def greet(name: str) -> str:
    return f"hello, {name}"
