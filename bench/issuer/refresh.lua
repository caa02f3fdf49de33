-- Each wrk thread (one connection each) follows its own session's rotation chain: every response
-- carries the next refresh token, which the next request presents.
local tokens = {}
for token in string.gmatch(os.getenv("REFRESH_TOKENS") or "", "[^,]+") do table.insert(tokens, token) end
local started = 0

function setup(thread)
  started = started + 1
  thread:set("token", tokens[started])
end

function request()
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" }, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then errors = (errors or 0) + 1 end
  local next = string.match(body, '"refresh_token":"([^"]+)"')
  if next then token = next end
end
