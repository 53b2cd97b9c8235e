// Conformance subset: what the JavaScript SDK (@azure/service-bus) reports when it talks to
// the emulator. Each case uses its own entity (see conformanceConfig in jstest_test.go). The
// expected values are Azure's, as the SDK's and the service's documentation and Microsoft's own
// tests state them (cited per case).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ServiceBusClient } from "@azure/service-bus";
import { arrivalWaitMs, connectionString, receiveOne, rejectsWithCode } from "./env.mjs";

let client;
before(() => {
  client = new ServiceBusClient(connectionString, {
    retryOptions: { maxRetries: 1, retryDelayInMs: 100, timeoutInMs: 15_000 },
  });
});
after(async () => {
  await client.close();
});

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// peekAll peeks from the start of the receiver's entity. A peek without fromSequenceNumber
// continues after the last message peeked through the same client and entity (the SDK keeps
// that position per entity in the client's connection), so a client of its own is used.
async function peekAll(receiver) {
  const own = new ServiceBusClient(connectionString);
  const [entity, subscriptions, subscription] = receiver.entityPath.split("/");
  const deadLetter = receiver.entityPath.endsWith("/$DeadLetterQueue") ? { subQueueType: "deadLetter" } : {};
  const fresh =
    subscriptions?.toLowerCase() === "subscriptions"
      ? own.createReceiver(entity, subscription, deadLetter)
      : own.createReceiver(entity, deadLetter);
  try {
    return await fresh.peekMessages(100);
  } finally {
    await own.close();
  }
}

describe("queue", () => {
  it("send, receive and complete: message properties, first delivery, lock", async () => {
    const sender = client.createSender("send-receive");
    const receiver = client.createReceiver("send-receive");
    const sentAt = Date.now();
    await sender.sendMessages({
      body: "hello",
      messageId: "m-1",
      subject: "greeting",
      contentType: "text/plain",
      correlationId: "c-1",
      to: "someone",
      replyTo: "reply-queue",
      timeToLive: 60_000,
      applicationProperties: { s: "x", n: 7, b: true },
    });
    const m = await receiveOne(receiver);
    assert.equal(m.body, "hello");
    assert.equal(m.messageId, "m-1");
    assert.equal(m.subject, "greeting");
    assert.equal(m.contentType, "text/plain");
    assert.equal(m.correlationId, "c-1");
    assert.equal(m.to, "someone");
    assert.equal(m.replyTo, "reply-queue");
    assert.deepEqual(m.applicationProperties, { s: "x", n: 7, b: true });
    // A first delivery has delivery count 0 (the JS SDK reports the header's count as is;
    // Microsoft's JS tests assert 0 after a first receive).
    assert.equal(m.deliveryCount, 0);
    assert.equal(m.state, "active");
    assert.ok(m.sequenceNumber.toNumber() >= 1, `sequence number ${m.sequenceNumber}`);
    assert.match(m.lockToken, uuidPattern);
    const enqueued = m.enqueuedTimeUtc.getTime();
    assert.ok(enqueued >= sentAt - 1000 && enqueued <= Date.now() + 1000, `enqueued at ${m.enqueuedTimeUtc}`);
    // Default lock duration PT1M.
    const lockLeft = m.lockedUntilUtc.getTime() - Date.now();
    assert.ok(lockLeft > 50_000 && lockLeft <= 61_000, `lock ends in ${lockLeft} ms`);
    assert.equal(m.timeToLive, 60_000);
    assert.equal(m.expiresAtUtc.getTime(), enqueued + 60_000);

    await receiver.completeMessage(m);
    assert.deepEqual(await peekAll(receiver), []);
    await sender.close();
    await receiver.close();
  });

  it("hands back the AMQP header, footer and application properties it was sent", async () => {
    // As Microsoft's amqpAnnotatedMessage.spec.ts: every header field but the delivery count
    // comes back as sent.
    const sender = client.createSender("header-roundtrip");
    const receiver = client.createReceiver("header-roundtrip", { receiveMode: "receiveAndDelete" });
    const sent = {
      body: "annotated",
      bodyType: "data",
      header: { deliveryCount: 10, durable: false, firstAcquirer: false, priority: 20, timeToLive: 100_000 },
      applicationProperties: { propOne: 1, propTwo: "two", propThree: true },
      footer: { propFooter: "foot" },
      messageAnnotations: { propMsgAnnotate: "annotation" },
      properties: { messageId: "annotated-1", correlationId: "corr", contentEncoding: "utf-8" },
    };
    await sender.sendMessages(sent);
    const m = await receiveOne(receiver);
    const raw = m._rawAmqpMessage;
    const { deliveryCount, ...header } = raw.header;
    assert.deepEqual(header, { durable: false, firstAcquirer: false, priority: 20, timeToLive: 100_000 });
    assert.equal(deliveryCount, 0);
    assert.deepEqual(raw.footer, sent.footer);
    assert.deepEqual(raw.applicationProperties, sent.applicationProperties);
    assert.equal(raw.messageAnnotations.propMsgAnnotate, "annotation");
    assert.equal(raw.properties.messageId, "annotated-1");
    assert.equal(raw.properties.contentEncoding, "utf-8");
    assert.equal(m.body, "annotated");
    await sender.close();
    await receiver.close();
  });

  it("AMQP body types: value, sequence and data come back as sent", async () => {
    // As Microsoft's amqpAnnotatedMessage.spec.ts ("AMQP body type encoding/decoding").
    const sender = client.createSender("header-roundtrip");
    const receiver = client.createReceiver("header-roundtrip", { receiveMode: "receiveAndDelete" });
    const cases = [
      ["value", [1, 2, 3]], ["value", 1.5], ["value", "hello"], ["value", { hello: "world", n: -7 }],
      ["sequence", [[1], [2], [3]]], ["sequence", [1, 2, 3]],
      ["data", Buffer.from("bytes")], ["data", { hello: "world" }], ["data", "text"],
    ];
    for (const [bodyType, body] of cases) {
      await sender.sendMessages({ body, bodyType });
      const m = await receiveOne(receiver);
      assert.equal(m._rawAmqpMessage.bodyType, bodyType, `body type of ${JSON.stringify(body)}`);
      assert.deepEqual(m.body, body);
    }
    await sender.close();
    await receiver.close();
  });

  it("abandon: redelivered with delivery count 1 and the modified properties", async () => {
    const sender = client.createSender("abandon");
    const receiver = client.createReceiver("abandon");
    await sender.sendMessages({ body: "again", messageId: "a-1" });
    const first = await receiveOne(receiver);
    assert.equal(first.deliveryCount, 0);
    await receiver.abandonMessage(first, { attempt: "one" });
    const second = await receiveOne(receiver);
    assert.equal(second.messageId, "a-1");
    assert.equal(second.deliveryCount, 1);
    assert.equal(second.sequenceNumber.toNumber(), first.sequenceNumber.toNumber());
    assert.equal(second.applicationProperties.attempt, "one");
    assert.notEqual(second.lockToken, first.lockToken);
    await receiver.completeMessage(second);
    assert.deepEqual(await peekAll(receiver), []);
    await sender.close();
    await receiver.close();
  });

  it("lock renewal moves lockedUntilUtc forward; renewing a settled message's lock fails", async () => {
    const sender = client.createSender("renew");
    // No automatic renewal: the SDK would otherwise renew on its own (maxAutoLockRenewalDurationInMs).
    const receiver = client.createReceiver("renew", { maxAutoLockRenewalDurationInMs: 0 });
    await sender.sendMessages({ body: "renew me" });
    const m = await receiveOne(receiver);
    const firstUntil = m.lockedUntilUtc.getTime();
    // Lock duration PT5S: the first lock ends about 5 s after the receive.
    assert.ok(firstUntil - Date.now() <= 5_000, `lock ends in ${firstUntil - Date.now()} ms`);
    const renewed = await receiver.renewMessageLock(m);
    assert.ok(renewed.getTime() >= firstUntil, `renewed until ${renewed.toISOString()}, was ${new Date(firstUntil).toISOString()}`);
    assert.equal(m.lockedUntilUtc.getTime(), renewed.getTime(), "the SDK updates the message's lockedUntilUtc");
    await receiver.completeMessage(m);
    await rejectsWithCode(receiver.renewMessageLock(m), "MessageLockLost");
    await sender.close();
    await receiver.close();
  });

  it("lock expiry: redelivered with delivery count 1; the old lock cannot settle", async () => {
    const sender = client.createSender("lock-expiry");
    const receiver = client.createReceiver("lock-expiry", { maxAutoLockRenewalDurationInMs: 0 });
    await sender.sendMessages({ body: "slow", messageId: "slow-1" });
    const first = await receiveOne(receiver);
    // Not settled: the PT2S lock runs out and the message becomes available again.
    const second = await receiveOne(receiver);
    assert.equal(second.messageId, "slow-1");
    assert.equal(second.deliveryCount, 1);
    assert.ok(Date.now() >= first.lockedUntilUtc.getTime() - 50, "redelivered only after the first lock ended");
    await rejectsWithCode(receiver.completeMessage(first), "MessageLockLost");
    await receiver.completeMessage(second);
    await sender.close();
    await receiver.close();
  });

  it("defer and receive deferred: state deferred, reachable only by sequence number", async () => {
    const sender = client.createSender("defer");
    const receiver = client.createReceiver("defer");
    await sender.sendMessages({ body: "later", messageId: "d-1" });
    const m = await receiveOne(receiver);
    const seq = m.sequenceNumber;
    await receiver.deferMessage(m, { deferredBy: "test" });
    const peeked = await peekAll(receiver);
    assert.equal(peeked.length, 1);
    assert.equal(peeked[0].state, "deferred");
    const [deferred] = await receiver.receiveDeferredMessages([seq]);
    assert.equal(deferred.messageId, "d-1");
    assert.equal(deferred.state, "deferred");
    assert.equal(deferred.applicationProperties.deferredBy, "test");
    assert.match(deferred.lockToken, uuidPattern);
    await receiver.completeMessage(deferred);
    assert.deepEqual(await peekAll(receiver), []);
    // Gone: Azure answers an unknown sequence number with MessageNotFound.
    await rejectsWithCode(receiver.receiveDeferredMessages([seq]), "MessageNotFound");
    await sender.close();
    await receiver.close();
  });

  it("dead-letter: reason and description on the DLQ", async () => {
    const sender = client.createSender("dead-letter");
    const receiver = client.createReceiver("dead-letter");
    const dlq = client.createReceiver("dead-letter", { subQueueType: "deadLetter" });
    await sender.sendMessages({ body: "poison", messageId: "p-1" });
    await receiver.abandonMessage(await receiveOne(receiver));
    const m = await receiveOne(receiver);
    assert.equal(m.deliveryCount, 1);
    await receiver.deadLetterMessage(m, { deadLetterReason: "the reason", deadLetterErrorDescription: "the description" });
    assert.deepEqual(await peekAll(receiver), []);
    const d = await receiveOne(dlq);
    assert.equal(d.messageId, "p-1");
    assert.equal(d.deadLetterReason, "the reason");
    assert.equal(d.deadLetterErrorDescription, "the description");
    assert.equal(d.sequenceNumber.toNumber(), m.sequenceNumber.toNumber());
    await dlq.completeMessage(d);
    assert.deepEqual(await peekAll(dlq), []);
    await sender.close();
    await receiver.close();
    await dlq.close();
  });

  it("dead-letter keeps the delivery count", async () => {
    const sender = client.createSender("dead-letter");
    const receiver = client.createReceiver("dead-letter");
    const dlq = client.createReceiver("dead-letter", { subQueueType: "deadLetter" });
    await sender.sendMessages({ body: "counted", messageId: "p-2" });
    await receiver.abandonMessage(await receiveOne(receiver));
    await receiver.deadLetterMessage(await receiveOne(receiver));
    const d = await receiveOne(dlq);
    await dlq.completeMessage(d);
    // Microsoft's TestMessageSettlementUsingReceiver: a message abandoned once and then
    // dead-lettered reaches the DLQ with the delivery count it had (1 in the header; the Go SDK
    // reports 2).
    assert.equal(d.deliveryCount, 1);
    await sender.close();
    await receiver.close();
    await dlq.close();
  });

  it("max delivery count: dead-lettered with reason MaxDeliveryCountExceeded", async () => {
    const sender = client.createSender("max-delivery");
    const receiver = client.createReceiver("max-delivery");
    const dlq = client.createReceiver("max-delivery", { subQueueType: "deadLetter" });
    await sender.sendMessages({ body: "fails twice", messageId: "mdc-1" });
    // MaxDeliveryCount 2: the second abandon moves the message to the DLQ.
    const first = await receiveOne(receiver);
    await receiver.abandonMessage(first);
    const second = await receiveOne(receiver);
    assert.equal(second.deliveryCount, 1);
    await receiver.abandonMessage(second);
    const d = await receiveOne(dlq);
    assert.equal(d.messageId, "mdc-1");
    assert.equal(d.deadLetterReason, "MaxDeliveryCountExceeded");
    assert.equal(d.deadLetterErrorDescription, "Message could not be consumed after 2 delivery attempts.");
    assert.deepEqual(await peekAll(receiver), []);
    await dlq.completeMessage(d);
    await sender.close();
    await receiver.close();
    await dlq.close();
  });

  it("schedule and cancel: scheduled state, delivery at the scheduled time", async () => {
    const sender = client.createSender("schedule");
    const receiver = client.createReceiver("schedule");
    const far = new Date(Date.now() + 3600_000);
    const [cancelled, kept] = await sender.scheduleMessages(
      [{ body: "never", messageId: "s-never" }, { body: "kept", messageId: "s-kept" }],
      far,
    );
    assert.ok(kept.toNumber() > cancelled.toNumber());
    let peeked = await peekAll(receiver);
    assert.deepEqual(peeked.map((p) => [p.messageId, p.state]), [["s-never", "scheduled"], ["s-kept", "scheduled"]]);
    assert.equal(peeked[0].scheduledEnqueueTimeUtc.getTime(), far.getTime());
    await sender.cancelScheduledMessages(cancelled);
    peeked = await peekAll(receiver);
    assert.deepEqual(peeked.map((p) => p.messageId), ["s-kept"]);
    await sender.cancelScheduledMessages(kept);
    assert.deepEqual(await peekAll(receiver), []);

    // A message scheduled a moment ahead arrives at its time, active, enqueued then.
    const soon = new Date(Date.now() + 1500);
    const [seq] = await sender.scheduleMessages({ body: "soon", messageId: "s-soon" }, soon);
    const m = await receiveOne(receiver);
    assert.equal(m.messageId, "s-soon");
    assert.equal(m.sequenceNumber.toNumber(), seq.toNumber());
    assert.equal(m.state, "active");
    assert.ok(Date.now() >= soon.getTime() - 50, "not delivered before its time");
    assert.ok(m.enqueuedTimeUtc.getTime() >= soon.getTime() - 1, `enqueued at ${m.enqueuedTimeUtc.toISOString()}`);
    await receiver.completeMessage(m);
    await sender.close();
    await receiver.close();
  });

  it("batch send: every message arrives, in order, with consecutive sequence numbers", async () => {
    const sender = client.createSender("batch");
    const receiver = client.createReceiver("batch", { receiveMode: "receiveAndDelete" });
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < 10; i++) {
      assert.ok(batch.tryAddMessage({ body: `b-${i}`, applicationProperties: { i } }));
    }
    assert.equal(batch.count, 10);
    await sender.sendMessages(batch);
    const got = [];
    while (got.length < 10) {
      const msgs = await receiver.receiveMessages(10 - got.length, { maxWaitTimeInMs: arrivalWaitMs });
      assert.ok(msgs.length > 0, `received ${got.length} of 10`);
      got.push(...msgs);
    }
    assert.deepEqual(got.map((m) => m.body), Array.from({ length: 10 }, (_, i) => `b-${i}`));
    assert.deepEqual(got.map((m) => m.applicationProperties.i), Array.from({ length: 10 }, (_, i) => i));
    const seqs = got.map((m) => m.sequenceNumber.toNumber());
    assert.deepEqual(seqs, Array.from({ length: 10 }, (_, i) => seqs[0] + i));
    await sender.close();
    await receiver.close();
  });

  it("receive and delete: no lock token, removed at once, not settleable", async () => {
    const sender = client.createSender("receive-and-delete");
    const receiver = client.createReceiver("receive-and-delete", { receiveMode: "receiveAndDelete" });
    await sender.sendMessages({ body: "gone", messageId: "rad-1" });
    const m = await receiveOne(receiver);
    assert.equal(m.messageId, "rad-1");
    assert.equal(m.deliveryCount, 0);
    assert.equal(m.lockToken, undefined);
    assert.deepEqual(await peekAll(receiver), []);
    await assert.rejects(receiver.completeMessage(m), /receiveAndDelete/);
    await sender.close();
    await receiver.close();
  });

  it("peek: does not lock or count a delivery", async () => {
    const sender = client.createSender("peek");
    const receiver = client.createReceiver("peek");
    await sender.sendMessages([{ body: "p-0" }, { body: "p-1" }]);
    const peeked = await receiver.peekMessages(10);
    assert.deepEqual(peeked.map((p) => [p.body, p.deliveryCount, p.state, p.lockToken]), [
      ["p-0", 0, "active", undefined],
      ["p-1", 0, "active", undefined],
    ]);
    const m = await receiveOne(receiver);
    assert.equal(m.body, "p-0");
    assert.equal(m.deliveryCount, 0);
    // Sent without a TTL: none in the header (Microsoft's
    // TestSender_SendAMQPMessageWithMultipleByteSlicesInData), so the SDK reports none.
    assert.equal(m._rawAmqpMessage.header.timeToLive, undefined);
    assert.equal(m.timeToLive, undefined);
    await receiver.completeMessage(m);
    const rest = await receiver.peekMessages(10, { fromSequenceNumber: peeked[0].sequenceNumber });
    assert.deepEqual(rest.map((p) => p.body), ["p-1"]);
    await receiver.completeMessage(await receiveOne(receiver));
    await sender.close();
    await receiver.close();
  });

  it("unknown entity: MessagingEntityNotFound", async () => {
    const receiver = client.createReceiver("no-such-queue");
    await rejectsWithCode(receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 }), "MessagingEntityNotFound");
    await receiver.close();
  });
});

describe("topic and subscriptions", () => {
  it("a subscription gets the messages its rule matches; the default rule gets all", async () => {
    const sender = client.createSender("events");
    const all = client.createReceiver("events", "all", { receiveMode: "receiveAndDelete" });
    const red = client.createReceiver("events", "red", { receiveMode: "receiveAndDelete" });
    await sender.sendMessages([
      { body: "r", subject: "red", messageId: "t-red" },
      { body: "b", subject: "blue", messageId: "t-blue" },
    ]);
    const got = [];
    while (got.length < 2) {
      const msgs = await all.receiveMessages(2 - got.length, { maxWaitTimeInMs: arrivalWaitMs });
      assert.ok(msgs.length > 0, "subscription all");
      got.push(...msgs);
    }
    assert.deepEqual(got.map((m) => m.messageId), ["t-red", "t-blue"]);
    const r = await receiveOne(red);
    assert.equal(r.messageId, "t-red");
    assert.equal(r.subject, "red");
    assert.equal(r.deliveryCount, 0);
    assert.deepEqual(await peekAll(red), [], "blue does not reach the red subscription");
    await sender.close();
    await all.close();
    await red.close();
  });
});
