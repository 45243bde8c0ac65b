-- wrk script for scripts/soak.sh: POST /v1/events, three single events for each batch of 20, each
-- event with a unique event_id, users and items drawn from files. Each connection waits
-- DELAY_MS between requests (wrk's delay()), so the log grows at a bounded rate.
--   wrk -t1 -c4 -d600s -s scripts/soak-events.lua http://HOST:PORT -- users.txt items.txt DELAY_MS
local threads, counter = {}, 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local function lines(path)
    local out = {}
    for line in io.lines(path) do
        if line ~= "" then out[#out + 1] = line end
    end
    return out
end

local types = { "view", "view", "view", "click", "click", "add_to_cart", "purchase" }

function init(args)
    users, items = lines(args[1]), lines(args[2])
    pause = tonumber(args[3]) or 20
    math.randomseed(1000 + id)
    seq, requests_sent, events_sent = 0, 0, 0
    -- The run's start (seconds): event ids stay unique across runs on the same database.
    run = os.time()
end

local function event()
    seq = seq + 1
    return string.format(
        '{"user_id":"%s","item_id":"%s","type":"%s","event_id":"soak-%d-%d-%d"}',
        users[math.random(#users)], items[math.random(#items)], types[math.random(#types)],
        run, id, seq)
end

function request()
    requests_sent = requests_sent + 1
    local body
    if requests_sent % 4 == 0 then
        local batch = {}
        for k = 1, 20 do batch[k] = event() end
        body = "[" .. table.concat(batch, ",") .. "]"
        events_sent = events_sent + 20
    else
        body = event()
        events_sent = events_sent + 1
    end
    return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end

function delay()
    return pause
end

function done(summary, latency, requests)
    local sent, reqs = 0, 0
    for _, t in ipairs(threads) do
        sent = sent + t:get("events_sent")
        reqs = reqs + t:get("requests_sent")
    end
    -- Events per request sent, applied to the requests wrk saw completed.
    local per_request = reqs > 0 and sent / reqs or 0
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests":%d,"seconds":%.3f,"requests_per_s":%.1f,"events_per_s":%.1f,' ..
        '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        summary.requests * per_request / (summary.duration / 1e6),
        latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
        e.status, e.connect + e.read + e.write + e.timeout))
end
