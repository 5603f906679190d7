-- post.lua: wrk script for `make bench-http`: POST the image named by $BENCH_IMAGE
-- (read once, at start-up) as the body of every request.
local path = os.getenv("BENCH_IMAGE")
local f = assert(io.open(path, "rb"), "cannot open BENCH_IMAGE " .. tostring(path))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
