-- wrk script for scripts/bench-ingest.sh: every request posts fresh synthetic events.
--   wrk -t2 -c8 -d60s -s scripts/ingest.lua http://HOST:PORT -- BATCH RUN_NONCE [USERS ITEMS [v4|v7]]
-- BATCH = 1 posts one event object per request, otherwise an array of BATCH events.
-- Ids look like a shop's: user ids "cust-" + 8 hex digits spread over USERS people, item ids
-- "SKU-" + 6 digits over ITEMS products, and event ids shaped like random (v4) UUIDs whose
-- random prefix scatters them over the unique index the way real UUIDs do, while the thread
-- number, the run nonce and a counter in the tail make every one of them unique by construction.
-- With "v7" the event ids are time-ordered instead (UUIDv7: milliseconds first, as ULIDs too).
local threads, counter = {}, 0
local types = { "view", "view", "view", "view", "view", "click", "click", "click", "add_to_cart", "purchase" }

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    batch = tonumber(args[1]) or 1000
    nonce = tonumber(args[2]) or 0
    users = tonumber(args[3]) or 200000
    items = tonumber(args[4]) or 50000
    ordered = args[5] == "v7"
    math.randomseed(nonce * 1000 + id)
    seq = 0
    accepted, duplicates = 0, 0
end

local function event(ts)
    seq = seq + 1
    -- A multiplicative hash of a random draw: users and items are hit unevenly, like a shop's.
    local u = (math.random(users) * 2654435761) % 4294967296
    local item = math.floor(items * math.random() ^ 2)
    local head1, head2, version = math.random(0, 0xffffffff), math.random(0, 0xffff), "4"
    if ordered then
        local ms = os.time() * 1000 + seq % 1000
        head1, head2, version = math.floor(ms / 65536), ms % 65536, "7"
    end
    return string.format(
        '{"event_id":"%08x-%04x-%s%03x-%x%03x-%04x%08x","user_id":"cust-%08x","item_id":"SKU-%06d",' ..
        '"type":"%s","timestamp":"%s"}',
        head1, head2, version, math.random(0, 0xfff),
        8 + id % 4, nonce % 0x1000, math.floor(id / 4) % 0x10000, seq,
        u, item, types[math.random(#types)], ts)
end

function request()
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
    local body
    if batch == 1 then
        body = event(ts)
    else
        local parts = {}
        for k = 1, batch do parts[k] = event(ts) end
        body = "[" .. table.concat(parts, ",") .. "]"
    end
    return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
    if status == 200 then
        accepted = accepted + tonumber(body:match('"accepted":(%d+)') or 0)
        duplicates = duplicates + tonumber(body:match('"duplicates":(%d+)') or 0)
    end
end

-- One machine-readable line (latency in wrk's microseconds -> ms); the script parses it.
function done(summary, latency, requests)
    local acc, dup = 0, 0
    for _, t in ipairs(threads) do
        acc = acc + t:get("accepted")
        dup = dup + t:get("duplicates")
    end
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests":%d,"seconds":%.3f,"accepted":%d,"duplicates":%d,' ..
        '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
        summary.requests, summary.duration / 1e6, acc, dup,
        latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
        e.status, e.connect + e.read + e.write + e.timeout))
end
