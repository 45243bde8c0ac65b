-- wrk script for scripts/bench-loop.sh: every request asks for a different user's
-- recommendations, cycling through a file of user ids, so the load spreads over many users
-- instead of hammering one cache entry.
--   wrk -t2 -c64 -d20s --latency -s scripts/rotate-users.lua http://HOST:PORT -- users.txt [n]
local threads, counter = {}, 0

function setup(thread)
    thread:set("id", counter) -- each thread starts at its own offset in the list
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    users = {}
    for line in io.lines(args[1]) do
        if line ~= "" then users[#users + 1] = line end
    end
    n = tonumber(args[2]) or 10
    i = id * 7919
end

function request()
    i = i + 1
    return wrk.format("GET", "/v1/users/" .. users[(i % #users) + 1] .. "/recommendations?n=" .. n)
end

-- One machine-readable line (latency in wrk's microseconds -> ms); the script parses it.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests":%d,"seconds":%.3f,"requests_per_s":%.1f,"p50_ms":%.3f,' ..
        '"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,' ..
        '"socket_errors":%d}\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
        latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.max / 1e3,
        e.status, e.connect + e.read + e.write + e.timeout))
end
