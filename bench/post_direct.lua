-- wrk script: the same request with a concrete model, for the direct and nginx baselines.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"openai/gpt-oss-20b","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Can you explain why this Python function returns None instead of the list I expect?"}],"temperature":0.7,"max_tokens":64}'
