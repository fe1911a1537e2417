-- wrk script: a new question every time (each request misses, goes upstream and fills the cache).
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"model":"auto","messages":[{"role":"user","content":"What are the main causes of inflation in country number %d?"}]}', n)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
