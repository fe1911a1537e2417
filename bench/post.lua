-- wrk script: POST a chat completion (keyword-routed by the default bench config).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"auto","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Can you explain why this Python function returns None instead of the list I expect?"}],"temperature":0.7,"max_tokens":64}'
