-- wrk script for Footfall's ingest endpoint: pageviews and custom events as many visitors
-- would send them, rotating through a file of real browser user-agents.
--
--   FOOTFALL_WRK_USER_AGENTS=ua.txt wrk -t1 -c64 -d10s --latency -s load/wrk/events.lua URL
--
-- ua.txt holds one user-agent per line (`footfall-load compare --wrk` writes one from a
-- public corpus). Client addresses go in X-Forwarded-For, so list the load's address in
-- Footfall's trusted_proxies.

local agents = {}
local pages = { "/", "/pricing", "/docs", "/docs/install", "/blog", "/blog/launch", "/about", "/contact" }
local referrers = { "", "https://www.google.com/", "https://news.ycombinator.com/", "https://github.com/", "https://duckduckgo.com/", "https://t.co/x" }
local n = 0

function init(args)
  local path = os.getenv("FOOTFALL_WRK_USER_AGENTS")
  if path == nil then
    error("set FOOTFALL_WRK_USER_AGENTS to a file of user-agents, one per line")
  end
  for line in io.lines(path) do
    if line ~= "" then
      agents[#agents + 1] = line
    end
  end
  if #agents == 0 then
    error("no user-agents in " .. path)
  end
  -- Threads start at different points, so they do not send the same sequence.
  n = math.random(1, 1000003)
end

function request()
  n = n + 1
  local visitor = n % 50000
  local ip = string.format("%d.%d.%d.%d", 11 + math.floor(visitor / 65536) % 200,
    math.floor(visitor / 256) % 256, visitor % 256, 1 + n % 7)
  local page = pages[1 + n % #pages]
  local referrer = referrers[1 + math.floor(n / 7) % #referrers]
  local body
  if n % 10 == 0 then
    body = string.format('{"n":"Signup","u":"https://example.com%s","d":"example.com","r":"%s","w":1280,"p":{"plan":"pro"}}', page, referrer)
  else
    body = string.format('{"n":"pageview","u":"https://example.com%s","d":"example.com","r":"%s","w":1440}', page, referrer)
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = agents[1 + visitor % #agents],
    ["X-Forwarded-For"] = ip,
  }
  return wrk.format("POST", "/api/event", headers, body)
end
