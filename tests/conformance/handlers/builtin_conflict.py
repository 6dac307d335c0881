CASE = {"handler": "sys.handler"}
