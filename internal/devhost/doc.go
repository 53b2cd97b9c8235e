// Package devhost is a local stand-in for the Azure Functions host (`func start`) for custom
// handlers, used when Core Tools are not installed and by end-to-end tests.
//
// What it does, following the host's behaviour:
//   - reads host.json (customHandler or the older httpWorker section, functionTimeout,
//     extensions.http.routePrefix), every <script root>/<Name>/function.json, and
//     local.settings.json Values; a variable already set in the process environment wins over a
//     Value, as with `func start`; AzureFunctionsJobHost__functionTimeout and
//     AzureFunctionsJobHost__customHandler__description__defaultExecutablePath override host.json;
//   - launches defaultExecutablePath (relative to workingDirectory, itself relative to the script
//     root) with arguments (%Setting% expanded), FUNCTIONS_CUSTOMHANDLER_PORT and _WORKER_ID, their
//     legacy FUNCTIONS_HTTPWORKER_* twins and FUNCTIONS_APP_ROOT_PATH;
//   - logs each handler stdout line at Info and each stderr line at Error (Warn if it contains
//     "warn"); JSON lines are embedded as JSON, or, with NewConsoleHandler (cmd/devhost on a
//     terminal), printed as the handler's own readable line;
//   - waits for readiness by polling GET / every 25 ms (any HTTP answer counts), for 30 s;
//   - fires timer triggers on their NCRONTAB schedule (6 fields, or 5 without seconds, in UTC as
//     in Azure) or TimeSpan ("hh:mm:ss") schedule, with %Setting% substitution and runOnStartup;
//     runs of one timer never overlap: the next occurrence is computed from the start of the
//     previous run and armed after it returned, so an overrun gives one immediate catch-up run;
//   - sends POST /<FunctionName> with {"Data":{"<binding>":{"Schedule":{"AdjustForDST":true},
//     "ScheduleStatus":…,"IsPastDue":false}},"Metadata":{"sys":{…}}} and the host's headers;
//     ScheduleStatus is null when the schedule fires more than once a minute or useMonitor is
//     false; logs the response's Logs and ReturnValue; a non-2xx status, a non-JSON or an empty
//     body fails the invocation;
//   - forwards /<routePrefix>/<route> requests (enableForwardingHttpRequest) unchanged (method,
//     path, query, headers, body when Content-Length > 0) and returns the handler's answer as is;
//     routes are matched case-insensitively against route templates with {param}, {param?},
//     {*rest} and {param:constraint} (constraints not checked), then the methods list; anything
//     else is 404;
//   - serves POST /admin/functions/<name> with {"input":""}: runs the timer now, answers 202; with
//     ?wait=true (the dev host's own addition) it answers once the run is over, with an AdminResult
//     (status, duration, return value, logs), which `make demo` prints;
//   - on Close: stops the schedules and the listener, waits (bounded) for running invocations
//     and forwarded requests, sends SIGTERM to the handler (SIGKILL after a grace period) and
//     waits for it.
//
// What it does not do:
//   - check function or master keys (authLevel is ignored, as with `func start`);
//   - support bindings other than timerTrigger, httpTrigger and http output, or HTTP functions in
//     envelope mode (without forwarding): they answer 501;
//   - persist the schedule status, detect past-due runs (IsPastDue is always false) or take the
//     singleton lock in storage; AzureWebJobsStorage is not used;
//   - restart a handler that exits (the host stops and reports the exit), or kill the handler when
//     an invocation exceeds functionTimeout (it cancels the request and logs an error);
//   - enforce the 230 s limit on HTTP responses, retry policies, or proxying mode's streaming.
package devhost
