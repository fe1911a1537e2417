-- wrk script: one question in the API named after `--` (wrk ... URL -- API [stream]), the same
-- system prompt, question, temperature and token limit in each (bench/translate_bench.sh):
--   chat       POST /v1/chat/completions
--   messages   POST /v1/messages (Anthropic)
--   responses  POST /v1/responses
-- With "stream" as the second argument the request asks for a streamed answer.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local system = "You are helpful."
local question = "Can you explain why this Python function returns None instead of the list I expect?"

function init(args)
  local api = args[1] or "chat"
  local stream = args[2] == "stream" and ',"stream":true' or ""
  if api == "chat" then
    wrk.path = "/v1/chat/completions"
    wrk.body = '{"model":"m","messages":[{"role":"system","content":"' .. system .. '"},{"role":"user","content":"' .. question .. '"}],"temperature":0.7,"max_tokens":64' .. stream .. '}'
  elseif api == "messages" then
    wrk.path = "/v1/messages"
    wrk.headers["anthropic-version"] = "2023-06-01"
    wrk.body = '{"model":"m","system":"' .. system .. '","messages":[{"role":"user","content":"' .. question .. '"}],"temperature":0.7,"max_tokens":64' .. stream .. '}'
  elseif api == "responses" then
    wrk.path = "/v1/responses"
    wrk.body = '{"model":"m","instructions":"' .. system .. '","input":[{"role":"user","content":"' .. question .. '"}],"temperature":0.7,"max_output_tokens":64' .. stream .. '}'
  else
    error("translate_post.lua: unknown API " .. api)
  end
end
