CASE = {"handler": "broken.handler", "files": {"broken.py": "x = 1\ndef handler(event, context:\n    return 1\n"}}
