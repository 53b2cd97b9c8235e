// The JavaScript SDK's ServiceBusAdministrationClient against the emulator's ATOM API on the
// admin port. The client always speaks https to the namespace host; a pipeline policy sends
// its requests to the admin port over http instead (the SDK version pinned here has no
// emulator mode for administration).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";
import { adminUrl, connectionString, receiveOne } from "./env.mjs";

const toAdminPort = {
  name: "toAdminPort",
  async sendRequest(request, next) {
    const u = new URL(request.url);
    const admin = new URL(adminUrl);
    u.protocol = admin.protocol;
    u.host = admin.host;
    request.url = u.toString();
    request.allowInsecureConnection = true;
    return next(request);
  },
};

let adminClient;
let client;
before(() => {
  adminClient = new ServiceBusAdministrationClient(connectionString, { retryOptions: { maxRetries: 0 } });
  adminClient.pipeline.addPolicy(toAdminPort);
  client = new ServiceBusClient(connectionString);
});
after(async () => {
  await client.close();
});

async function rejectsWith(promise, code, statusCode) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `code (message: ${err.message})`);
    if (statusCode !== undefined) {
      assert.equal(err.statusCode, statusCode, "statusCode");
    }
    return true;
  });
}

describe("ServiceBusAdministrationClient", () => {
  it("queues: create, get, update, runtime properties, list, delete", async () => {
    const created = await adminClient.createQueue("admin-orders", {
      lockDuration: "PT45S",
      maxDeliveryCount: 7,
      requiresDuplicateDetection: true,
      duplicateDetectionHistoryTimeWindow: "PT4H",
      defaultMessageTimeToLive: "PT6H",
      deadLetteringOnMessageExpiration: true,
      userMetadata: "js metadata",
    });
    assert.equal(created.name, "admin-orders");
    assert.equal(created.lockDuration, "PT45S");
    assert.equal(created.maxDeliveryCount, 7);
    assert.equal(created.requiresDuplicateDetection, true);
    assert.equal(created.duplicateDetectionHistoryTimeWindow, "PT4H");
    assert.equal(created.defaultMessageTimeToLive, "PT6H");
    assert.equal(created.deadLetteringOnMessageExpiration, true);
    assert.equal(created.userMetadata, "js metadata");
    assert.equal(created.requiresSession, false);
    assert.equal(created.status, "Active");
    assert.equal(created.maxSizeInMegabytes, 1024);
    assert.equal(created.maxMessageSizeInKilobytes, 256);

    const got = await adminClient.getQueue("admin-orders");
    assert.deepEqual(stripResponse(got), stripResponse(created));
    assert.equal(await adminClient.queueExists("admin-orders"), true);
    assert.equal(await adminClient.queueExists("admin-missing"), false);

    got.maxDeliveryCount = 9;
    const updated = await adminClient.updateQueue(got);
    assert.equal(updated.maxDeliveryCount, 9);
    assert.equal(updated.lockDuration, "PT45S");

    const sender = client.createSender("admin-orders");
    await sender.sendMessages([{ body: "one", messageId: "1" }, { body: "two", messageId: "2" }]);
    await sender.scheduleMessages({ body: "later", messageId: "3" }, new Date(Date.now() + 3600_000));
    const receiver = client.createReceiver("admin-orders");
    await receiver.deadLetterMessage(await receiveOne(receiver));
    const rt = await adminClient.getQueueRuntimeProperties("admin-orders");
    assert.equal(rt.name, "admin-orders");
    assert.equal(rt.activeMessageCount, 1);
    assert.equal(rt.deadLetterMessageCount, 1);
    assert.equal(rt.scheduledMessageCount, 1);
    assert.equal(rt.transferMessageCount, 0);
    assert.equal(rt.totalMessageCount, 3);
    assert.ok(rt.sizeInBytes > 0, `sizeInBytes ${rt.sizeInBytes}`);
    assert.ok(rt.createdAt.getTime() > 0 && rt.accessedAt.getTime() > 0, "times");
    await sender.close();
    await receiver.close();

    await rejectsWith(adminClient.createQueue("admin-orders"), "MessageEntityAlreadyExistsError", 409);
    await rejectsWith(adminClient.getQueue("admin-missing"), "MessageEntityNotFoundError");
    await rejectsWith(adminClient.deleteQueue("admin-missing"), "MessageEntityNotFoundError", 404);
    await rejectsWith(adminClient.createQueue("admin-bad", { lockDuration: "PT10M" }), "ServiceError", 400);

    for (const name of ["admin-list-a", "admin-list-b", "admin-list-c"]) {
      await adminClient.createQueue(name);
    }
    const names = [];
    let pages = 0;
    for await (const page of adminClient.listQueues().byPage({ maxPageSize: 2 })) {
      pages++;
      assert.ok(page.length <= 2, `page of ${page.length}`);
      names.push(...page.map((q) => q.name));
    }
    for (const name of ["admin-orders", "admin-list-a", "admin-list-b", "admin-list-c"]) {
      assert.ok(names.includes(name), `listed ${names}`);
    }
    assert.ok(pages >= 2, `${pages} pages`);
    const runtime = [];
    for await (const q of adminClient.listQueuesRuntimeProperties()) {
      runtime.push(q);
    }
    assert.equal(runtime.find((q) => q.name === "admin-orders")?.activeMessageCount, 1);

    for (const name of ["admin-orders", "admin-list-a", "admin-list-b", "admin-list-c"]) {
      await adminClient.deleteQueue(name);
    }
    assert.equal(await adminClient.queueExists("admin-orders"), false);
  });

  it("topics, subscriptions and rules", async () => {
    const topic = await adminClient.createTopic("admin-events", { defaultMessageTimeToLive: "PT1H", userMetadata: "t" });
    assert.equal(topic.name, "admin-events");
    assert.equal(topic.defaultMessageTimeToLive, "PT1H");
    assert.equal(topic.userMetadata, "t");
    const all = await adminClient.createSubscription("admin-events", "all");
    assert.equal(all.subscriptionName, "all");
    assert.equal(all.topicName, "admin-events");
    assert.equal(all.maxDeliveryCount, 10);
    assert.equal(all.lockDuration, "PT1M");
    const red = await adminClient.createSubscription("admin-events", "red", {
      maxDeliveryCount: 3,
      defaultRuleOptions: { name: "red-only", filter: { subject: "red", applicationProperties: { level: 2 } } },
    });
    assert.equal(red.maxDeliveryCount, 3);
    assert.equal(await adminClient.subscriptionExists("admin-events", "red"), true);
    await rejectsWith(adminClient.createSubscription("admin-events", "red"), "MessageEntityAlreadyExistsError", 409);

    const defaults = [];
    for await (const r of adminClient.listRules("admin-events", "all")) {
      defaults.push(r);
    }
    assert.deepEqual(defaults.map((r) => [r.name, r.filter.sqlExpression]), [["$Default", "1=1"]]);
    const redRule = await adminClient.getRule("admin-events", "red", "red-only");
    assert.equal(redRule.name, "red-only");
    assert.equal(redRule.filter.subject, "red");
    assert.deepEqual(redRule.filter.applicationProperties, { level: 2 });
    assert.equal(await adminClient.ruleExists("admin-events", "red", "nope"), false);

    const blue = await adminClient.createRule("admin-events", "all", "blue-only", { subject: "blue" });
    assert.equal(blue.name, "blue-only");
    assert.equal(blue.filter.subject, "blue");
    await adminClient.deleteRule("admin-events", "all", "$Default");
    await rejectsWith(adminClient.createRule("admin-events", "all", "sql", { sqlExpression: "a > 1" }), "ServiceError", 400);

    // The rules decide which subscription gets which message.
    const sender = client.createSender("admin-events");
    await sender.sendMessages([
      { body: "r", subject: "red", applicationProperties: { level: 2 } },
      { body: "b", subject: "blue" },
      { body: "g", subject: "green" },
    ]);
    const allRt = await adminClient.getSubscriptionRuntimeProperties("admin-events", "all");
    const redRt = await adminClient.getSubscriptionRuntimeProperties("admin-events", "red");
    assert.equal(allRt.activeMessageCount, 1, "all (only blue-only left)");
    assert.equal(redRt.activeMessageCount, 1, "red");
    assert.equal(redRt.totalMessageCount, 1);
    const topicRt = await adminClient.getTopicRuntimeProperties("admin-events");
    assert.equal(topicRt.subscriptionCount, 2);
    assert.ok(topicRt.sizeInBytes > 0);
    await sender.close();

    red.maxDeliveryCount = 5;
    assert.equal((await adminClient.updateSubscription(red)).maxDeliveryCount, 5);
    const subs = [];
    for await (const s of adminClient.listSubscriptions("admin-events")) {
      subs.push(s.subscriptionName);
    }
    assert.deepEqual(subs, ["all", "red"]);
    await adminClient.deleteSubscription("admin-events", "red");
    await rejectsWith(adminClient.getSubscription("admin-events", "red"), "MessageEntityNotFoundError");
    await adminClient.deleteTopic("admin-events");
    assert.equal(await adminClient.topicExists("admin-events"), false);
  });

  it("namespace properties", async () => {
    const ns = await adminClient.getNamespaceProperties();
    assert.equal(ns.messagingSku, "Standard");
    assert.ok(ns.name);
    assert.ok(ns.createdAt.getTime() > 0);
  });
});

// stripResponse drops the HTTP response the SDK attaches to results.
function stripResponse(v) {
  const { _response, ...rest } = v;
  return rest;
}
