-- wrk script of tests/benchmarks/side_by_side.py: sends pre-signed webhooks from a file, never one twice.
--
--   wrk -t2 -c32 -d10s -s side_by_side.lua http://127.0.0.1:PORT -- REQUESTS_FILE THREADS EXPECTED
--
-- Each line of REQUESTS_FILE is one request: path, then headers as "Name: value", then the body, separated by
-- tabs. Thread k of THREADS takes lines k, k+THREADS, k+2*THREADS, ... in order, so no two threads send the same
-- request; a thread that runs out starts its slice again and says so (`wrapped`). Every answer is checked: status
-- 200, TwiML (`<Response`) and the verb the app's normal answer has (EXPECTED, e.g. `<Gather`: not the TwiML of a
-- failure). done() prints one JSON line: requests, duration, errors, latency, and how many
-- requests each thread sent (which lines of the file went out).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local path, count = args[1], tonumber(args[2])
   expected = args[3]
   prepared = {}
   local line_number = 0
   for line in io.lines(path) do
      if line_number % count == id then
         local fields = {}
         for field in string.gmatch(line, "[^\t]+") do
            table.insert(fields, field)
         end
         local headers = {}
         for i = 2, #fields - 1 do
            local name, value = string.match(fields[i], "^([^:]+): (.*)$")
            headers[name] = value
         end
         table.insert(prepared, wrk.format("POST", fields[1], headers, fields[#fields]))
      end
      line_number = line_number + 1
   end
   position = 0
   issued = 0
   wrapped = 0
   bad = 0
end

function request()
   position = position + 1
   if position > #prepared then
      position = 1
      wrapped = wrapped + 1
   end
   issued = issued + 1
   return prepared[position]
end

function response(status, headers, body)
   if status ~= 200 or not string.find(body, "<Response", 1, true) or not string.find(body, expected, 1, true) then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local sent, all_bad, all_wrapped = {}, 0, 0
   for _, thread in ipairs(threads) do
      sent[thread:get("id") + 1] = thread:get("issued")
      all_bad = all_bad + thread:get("bad")
      all_wrapped = all_wrapped + thread:get("wrapped")
   end
   local errors = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
      '"not_twiml": %d, "wrapped": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "sent": [%s]}\n',
      summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write,
      errors.timeout, all_bad, all_wrapped, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), table.concat(sent, ", ")))
end
