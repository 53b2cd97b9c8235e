// Shared setup of the JavaScript conformance tests: the emulator the Go driver
// (jstest_test.go) started, and small helpers. Run them with `make test-js`.
import assert from "node:assert/strict";

function required(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run these tests through \`make test-js\` (go test ./jstest), which starts the emulator`);
  }
  return v;
}

/** The emulator's connection string (UseDevelopmentEmulator=true). */
export const connectionString = required("SB_CONNECTION_STRING");

/** Base URL of the emulator's admin API, e.g. http://127.0.0.1:5300. */
export const adminUrl = required("SB_ADMIN_URL");

/** How long a receive waits for a message that is expected to arrive. */
export const arrivalWaitMs = 10_000;

/** Receives exactly one message, failing when none arrives within arrivalWaitMs. */
export async function receiveOne(receiver) {
  const msgs = await receiver.receiveMessages(1, { maxWaitTimeInMs: arrivalWaitMs });
  assert.equal(msgs.length, 1, `expected one message from ${receiver.entityPath}`);
  return msgs[0];
}

/** Asserts that promise rejects with a ServiceBusError (or RestError) of the given code. */
export async function rejectsWithCode(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `error code (message: ${err.message})`);
    return true;
  });
}
