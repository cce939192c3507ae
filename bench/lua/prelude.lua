-- OneCity bench prelude: loaded before every scenario's own Lua (bench/scenarios.py).
--
-- It gives each wrk thread its share of the prepared data (single-use refresh tokens, live
-- OTP codes, ...), counts the status of every response per thread, and prints one JSON line
-- from done() that bench/wrk.py parses. Scenario code calls next_item() and defines
-- request(); a scenario without request() keeps wrk's static request (cheapest for wrk).
--
-- Hooks a scenario may define (all optional):
--   check(status, headers, body)  for a 2xx/3xx response: return nil if it is right, or a short
--                                 reason; a wrong body counts as an error (say, a 200 that says
--                                 "valid": false). `expect_body`, set from the scenario's
--                                 `expect`, makes a default check: the body must contain it.
--   on_response(status, headers, body)  sees every response (e.g. to keep a value for a later
--                                 request of the same thread).
-- count(name) adds one to a named counter, reported per name in the result line.
--
-- Arguments (after `--` on the wrk command line): data file path ("-" for none), threads.

local threads = {}
local counter = 0

function setup(thread)
   -- Runs in the main Lua state once per thread, before init(); `id` becomes a global
   -- of that thread's own state, so each thread can take a disjoint slice of the data.
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   errors = 0
   wrong = 0
   exhausted = 0
   counts = {}
   statuses = {}
   items = {}
   cursor = 0
   wrapped = false
   local path = args[1] or "-"
   local stride = tonumber(args[2] or "1")
   if path ~= "-" then
      -- Thread `id` takes lines id, id + stride, id + 2 * stride, ...: no two threads (and no
      -- two requests) ever send the same single-use item.
      local n = 0
      for line in io.lines(path) do
         if n % stride == id - 1 then
            items[#items + 1] = line
         end
         n = n + 1
      end
   end
end

function next_item()
   cursor = cursor + 1
   if cursor > #items then
      -- Out of prepared data: wrap around (single-use items then fail and count as errors),
      -- and count every reused item, so a result measured on reused data is never taken
      -- for a real one.
      wrapped = true
      cursor = 1
   end
   if wrapped then
      exhausted = exhausted + 1
   end
   return items[cursor]
end

function count(name)
   counts[name] = (counts[name] or 0) + 1
end

if check == nil and expect_body ~= nil then
   function check(status, headers, body)
      if not string.find(body or "", expect_body, 1, true) then
         return "no " .. expect_body
      end
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local failure = nil
   if status < 200 or status >= 400 then
      failure = tostring(status)
   elseif check ~= nil then
      local why = check(status, headers, body)
      if why ~= nil then
         wrong = wrong + 1
         count("wrong body: " .. why)
         failure = status .. " (" .. why .. ")"
      end
   end
   if failure ~= nil then
      errors = errors + 1
      -- Keep the first failure's body: it usually says why (a problem+json detail).
      if first_error == nil then
         first_error = failure .. " " .. string.sub(body or "", 1, 300)
      end
   end
   if on_response ~= nil then
      on_response(status, headers, body)
   end
end

local function json_escape(text)
   return (text:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end))
end

function done(summary, latency, requests)
   local total_errors, total_wrong, total_exhausted, merged, named, sample = 0, 0, 0, {}, {}, ""
   for _, thread in ipairs(threads) do
      if sample == "" then
         sample = thread:get("first_error") or ""
      end
      total_errors = total_errors + (thread:get("errors") or 0)
      total_wrong = total_wrong + (thread:get("wrong") or 0)
      total_exhausted = total_exhausted + (thread:get("exhausted") or 0)
      for status, n in pairs(thread:get("statuses") or {}) do
         merged[status] = (merged[status] or 0) + n
      end
      for name, n in pairs(thread:get("counts") or {}) do
         named[name] = (named[name] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(merged) do
      parts[#parts + 1] = string.format('"%d":%d', status, n)
   end
   local names = {}
   for name, n in pairs(named) do
      names[#names + 1] = string.format('"%s":%d', json_escape(tostring(name)), n)
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_s":%.3f,"rps":%.2f,'
         .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,'
         .. '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
         .. '"timeouts":%d,"exhausted":%d,"check_errors":%d,"statuses":{%s},"counts":{%s},"first_error":"%s"}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max,
      total_errors, e.connect, e.read, e.write, e.timeout, total_exhausted, total_wrong, table.concat(parts, ","),
      table.concat(names, ","), json_escape(sample)))
end
