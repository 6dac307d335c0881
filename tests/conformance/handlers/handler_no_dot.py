CASE = {"handler": "handler_no_dot"}
