-- wrk script: POST one long chat completion over and over (bench/long_prompt_mix.sh writes the
-- body to $LONG_BODY), optionally LONG_DELAY_MS apart per connection.
local f = assert(io.open(os.getenv("LONG_BODY"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("LONG_DELAY_MS") or "0")
if pause > 0 then
  delay = function()
    return pause
  end
end
