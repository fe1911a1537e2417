-- wrk script: the chat completion of post.lua for the model named after `--` (wrk ... URL -- MODEL;
-- default "auto"), so one script serves several models of one router (bench/tls_bench.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local model = args[1] or "auto"
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Can you explain why this Python function returns None instead of the list I expect?"}],"temperature":0.7,"max_tokens":64}'
end
