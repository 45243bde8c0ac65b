-- wrk script for the load scripts in scripts/: every request GETs the next path
-- of a file (one path per line, e.g. /v1/users/u1/recommendations?n=10), so the load spreads
-- over many users or items instead of hammering one cache entry. Each thread starts at its own
-- offset. Prints one machine-readable WRK_JSON line at the end.
--   wrk -t2 -c64 -d15s --latency -s scripts/rotate-paths.lua http://HOST:PORT -- paths.txt
local threads, counter = {}, 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    paths = {}
    for line in io.lines(args[1]) do
        if line ~= "" then paths[#paths + 1] = line end
    end
    i = id * 7919
end

function request()
    i = i + 1
    return wrk.format("GET", paths[(i % #paths) + 1])
end

-- Latency in wrk's microseconds -> ms.
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
