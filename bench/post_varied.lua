-- wrk script: POST chat completions whose question changes on every request (a counter in the
-- text), so a semantic cache misses and stores as it would under real traffic.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- A tag per wrk run: a second run must not ask the first run's questions again (the cache would
-- answer them).
local run = string.format("%x", (os.time() * 1000 + math.floor(os.clock() * 1e6)) % 0xffffff) ..
  tostring({}):sub(-6)
local n = 0
local topics = { "Python function", "derivative of x^3", "French revolution", "tax law", "protein folding" }
request = function()
  n = n + 1
  local body = '{"model":"auto","messages":[{"role":"system","content":"You are helpful."},' ..
    '{"role":"user","content":"Question ' .. run .. '-' .. n .. ': can you explain the ' .. topics[n % #topics + 1] ..
    ' part ' .. n .. ' in a few sentences?"}],"temperature":0.7,"max_tokens":64}'
  return wrk.format(nil, nil, nil, body)
end
