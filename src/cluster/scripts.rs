//! The Lua scripts Redis runs atomically for shared limits: no read-modify-write race
//! between gateways, one round trip per lease.

/// A token bucket lease. `KEYS[1]` is a hash `{tokens, ts}`; `ARGV` are the rate per
/// second, the burst, the tokens wanted and the key's lifetime in milliseconds. The
/// bucket refills by Redis's own clock (`TIME`), so gateways' clocks never matter. It
/// grants at most what is there and at most an eighth of it (at least one), so a lease
/// never takes the whole bucket from the rest of the fleet. Returns
/// `{granted, tokens left (floor), milliseconds until one token is there}`.
pub const BUCKET: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
end
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.max(1, math.floor(tokens / 8)), math.floor(tokens))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local wait = 0
if granted == 0 then
  wait = math.ceil((1 - tokens) / rate * 1000)
end
return {granted, math.floor(tokens), wait}
"#;

/// A fixed-window counter lease. `KEYS[1]` is the window's counter; `ARGV` are the
/// limit, the requests wanted and the key's lifetime in milliseconds. It grants at most
/// what is left and at most an eighth of it (at least one). Returns
/// `{granted, used after the grant}`.
pub const WINDOW: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local granted = 0
if used < limit then
  granted = math.min(want, math.max(1, math.floor((limit - used) / 8)), limit - used)
  used = redis.call('INCRBY', KEYS[1], granted)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {granted, used}
"#;
