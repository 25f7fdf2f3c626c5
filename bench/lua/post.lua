-- wrk script: POST the body in $BENCH_BODY (a file) and print a JSON summary.
-- Extra headers come from wrk's -H; the summary line starts with BENCH_JSON.
local path = os.getenv("BENCH_BODY")
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "sk-ant-bench-not-a-secret"
if path then
    local f = assert(io.open(path, "rb"))
    wrk.body = f:read("*a")
    f:close()
end

-- No response() callback: wrk would then hand every response to Lua, which
-- costs more than the proxies it measures. summary.errors.status counts >= 400.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"min":%d,"mean":%.2f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max))
end
