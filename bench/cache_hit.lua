-- wrk script: the same question every time (after the first request, every answer is a cache hit).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"auto","messages":[{"role":"user","content":"What are the main causes of inflation in an economy?"}]}'
