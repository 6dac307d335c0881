"""Lambda's endpoints on localhost, on the simulator's engine (``lambdasim serve``, ``Simulator.serve()``).

- :mod:`._http`: a small threaded HTTP/1.1 server (one thread per connection, stopped at once), whose
  requests and responses are plain values (:class:`~._http.Request`, :class:`~._http.Response`).
- :mod:`._invoke_api`: Lambda's Invoke API (``POST /2015-03-31/functions/{name}/invocations``), also
  what instances reach through ``AWS_ENDPOINT_URL_LAMBDA`` (functions that invoke functions).
- :mod:`._routes`: a template's HTTP routes (API Gateway REST and HTTP APIs, function URLs) turned into
  events and the function's results into HTTP responses.
- :mod:`._served`: ``Simulator.serve()``: both endpoints for every function, and their counters.
- :mod:`._live`: the terminal's live view of ``lambdasim serve`` (rich).
"""
