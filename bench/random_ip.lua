-- Each request comes from a different client address (behind TRUST_PROXY), so the rate
-- limiter does its full Redis round trip without answering 429.
math.randomseed(os.time())
request = function()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." ..
             math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", nil, { ["X-Forwarded-For"] = ip })
end
