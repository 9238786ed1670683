// Generates vectors.json: requests signed (where the SDK can sign) and
// judged by each provider's official SDK, at a fixed "now". The Go test
// sdk_vectors_test.go checks that outboxd's verifiers agree, or differ only
// where docs/receiving.md says we differ on purpose.
//
//	npm install && npm run generate
import crypto from "node:crypto";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import Stripe from "stripe";
import twilio from "twilio";
import { sign as octoSign, verify as octoVerify } from "@octokit/webhooks-methods";
import { verifySlackRequest } from "@slack/bolt/dist/receivers/verify-request.js";
import { LinearWebhookClient } from "@linear/sdk/webhooks";
import "@shopify/shopify-api/adapters/node";
import { shopifyApi, ApiVersion } from "@shopify/shopify-api";
import http from "node:http";
import net from "node:net";

const NOW = 1767225600; // 2026-01-01T00:00:00Z
const realNow = Date.now;
Date.now = () => NOW * 1000; // the SDKs that read the clock read this one

const vectors = [];
function add(provider, name, secret, { url = "https://example.com/hook", headers, body }, valid) {
  vectors.push({ provider, name, secret, url, headers, body, now: NOW, sdk_valid: valid });
}
function judge(fn) {
  try {
    return fn() !== false;
  } catch {
    return false;
  }
}
async function judgeAsync(fn) {
  try {
    return (await fn()) !== false;
  } catch {
    return false;
  }
}
const hmacHex = (key, msg) => crypto.createHmac("sha256", key).update(msg).digest("hex");

// Standard Webhooks and Svix: one secret, the SDK signs; raw timestamps are
// signed by hand as the spec says, over the header's text.
const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const stdKey = Buffer.from(WHSEC.slice(6), "base64");
const stdSig = (id, ts, body) => "v1," + crypto.createHmac("sha256", stdKey).update(`${id}.${ts}.${body}`).digest("base64");
const body = '{"type":"contact.created","timestamp":"2025-12-31T23:59:00Z","data":{"id":1}}';
for (const [prefix, provider, verifier] of [
  ["webhook", "standard-webhooks", new StandardWebhook(WHSEC)],
  ["svix", "svix", new SvixWebhook(WHSEC)],
]) {
  const check = (h) => judge(() => verifier.verify(body, h));
  const hdr = (id, ts, sig) => ({ [`${prefix}-id`]: id, [`${prefix}-timestamp`]: String(ts), [`${prefix}-signature`]: sig });
  const signed = (ts) => hdr("msg_1", ts, stdSig("msg_1", ts, body));
  const sdkSigned = hdr("msg_1", NOW, verifier.sign("msg_1", new Date(NOW * 1000), body));
  add(provider, "signed by the SDK", WHSEC, { headers: sdkSigned, body }, check(sdkSigned));
  for (const [name, ts] of [
    ["edge of the past", NOW - 300], ["stale by 1 s", NOW - 301], ["edge of the future", NOW + 300],
    ["future by 1 s", NOW + 301], ["int64 max", "9223372036854775807"], ["int64 min", "-9223372036854775808"],
    ["milliseconds", String(NOW * 1000)], ["300 years ahead", NOW + 300 * 365 * 86400],
  ]) {
    const h = signed(ts);
    add(provider, name, WHSEC, { headers: h, body }, check(h));
  }
  const rotated = hdr("msg_1", NOW, `v1,${Buffer.alloc(32).toString("base64")} ${stdSig("msg_1", NOW, body)}`);
  add(provider, "second of two signatures", WHSEC, { headers: rotated, body }, check(rotated));
  const tampered = signed(NOW);
  add(provider, "body changed", WHSEC, { headers: tampered, body: body.replace("1", "2") }, judge(() => verifier.verify(body.replace("1", "2"), tampered)));
}
{
  const h = { "webhook-id": "msg_2", "webhook-timestamp": String(NOW), "webhook-signature": stdSig("msg_2", NOW, body) };
  add("svix", "unbranded headers only", WHSEC, { headers: h, body }, judge(() => new SvixWebhook(WHSEC).verify(body, h)));
}

// Stripe: the SDK signs (generateTestHeaderString) and judges
// (constructEvent with receivedAt).
{
  const secret = "whsec_stripe_vectors";
  const stripe = new Stripe("sk_test_vectors");
  const payload = '{"id":"evt_1","object":"event","type":"invoice.paid","created":1767225000}';
  const check = (header) => judge(() => stripe.webhooks.constructEvent(payload, header, secret, 300, undefined, NOW * 1000));
  const at = (ts) => stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: ts });
  for (const [name, header] of [
    ["signed by the SDK", at(NOW)], ["edge of the past", at(NOW - 300)], ["stale by 1 s", at(NOW - 301)],
    ["future by 1 s", at(NOW + 301)], ["300 years ahead", at(NOW + 300 * 365 * 86400)],
    ["two v1, the second good", `t=${NOW},v1=${hmacHex("whsec_other", `${NOW}.${payload}`)},v1=${hmacHex(secret, `${NOW}.${payload}`)}`],
    ["upper-case hex", `t=${NOW},v1=${hmacHex(secret, `${NOW}.${payload}`).toUpperCase()}`],
    ["v0 only", `t=${NOW},v0=${hmacHex(secret, `${NOW}.${payload}`)}`],
  ]) {
    add("stripe", name, secret, { headers: { "stripe-signature": header }, body: payload }, check(header));
  }
}

// Twilio: the SDK signs (getExpectedTwilioSignature over the URL it was
// given) and judges (validateRequest over the URL as received).
{
  const token = "twilio_vectors_token";
  const form = "MessageSid=SM1&MessageStatus=delivered&Tag=a&Tag=a&To=%2B15558675310";
  const params = {};
  for (const [k, v] of new URLSearchParams(form)) params[k] = k in params ? [].concat(params[k], v) : v;
  for (const [name, received, signedURL] of [
    ["URL as received", "https://example.com/hook?x=1", "https://example.com/hook?x=1"],
    ["signed with :443, received without", "https://example.com/hook?x=1", "https://example.com:443/hook?x=1"],
    ["signed without port, received with :443", "https://example.com:443/hook?x=1", "https://example.com/hook?x=1"],
    ["signed with :80, received without", "http://example.com/hook", "http://example.com:80/hook"],
    ["non-standard port stripped", "https://example.com:8443/hook", "https://example.com/hook"],
    ["another port", "https://example.com:8443/hook", "https://example.com:9443/hook"],
  ]) {
    const sig = twilio.getExpectedTwilioSignature(token, signedURL, params);
    add("twilio", name, token, { url: received, headers: { "x-twilio-signature": sig, "content-type": "application/x-www-form-urlencoded" }, body: form },
      twilio.validateRequest(token, sig, received, params));
  }
  const both = "Tag=a&Tag=a";
  const sigBoth = crypto.createHmac("sha1", token).update("https://example.com/hookTagaTaga").digest("base64");
  add("twilio", "repeated pair signed twice", token, { url: "https://example.com/hook", headers: { "x-twilio-signature": sigBoth }, body: both },
    twilio.validateRequest(token, sigBoth, "https://example.com/hook", { Tag: ["a", "a"] }));
  const json = '{"MessageSid":"SM2","MessageStatus":"sent"}';
  const jsonURL = "https://example.com/hook?bodySHA256=" + crypto.createHash("sha256").update(json).digest("hex");
  const sigJSON = twilio.getExpectedTwilioSignature(token, jsonURL, {});
  add("twilio", "JSON body bound by bodySHA256", token, { url: jsonURL, headers: { "x-twilio-signature": sigJSON }, body: json },
    twilio.validateRequestWithBody(token, sigJSON, jsonURL, json));
  add("twilio", "JSON body changed", token, { url: jsonURL, headers: { "x-twilio-signature": sigJSON }, body: json + " " },
    twilio.validateRequestWithBody(token, sigJSON, jsonURL, json + " "));
}

// GitHub: Octokit signs and judges.
{
  const secret = "github_vectors_secret";
  const payload = '{"action":"opened","issue":{"id":1,"updated_at":"2025-12-31T23:00:00Z"}}';
  const good = await octoSign(secret, payload);
  for (const [name, sig] of [["signed by the SDK", good], ["upper-case hex", "sha256=" + good.slice(7).toUpperCase()], ["wrong secret", await octoSign("other", payload)]]) {
    add("github", name, secret, { headers: { "x-hub-signature-256": sig, "x-github-delivery": "d-1", "x-github-event": "issues" }, body: payload },
      await judgeAsync(() => octoVerify(secret, payload, sig)));
  }
}

// Slack: signed as Slack documents it, judged by Bolt's verifySlackRequest.
{
  const secret = "slack_vectors_secret";
  const payload = '{"type":"event_callback","event_id":"Ev1","event_time":1767225500}';
  for (const [name, ts] of [
    ["signed now", NOW], ["edge of the past", NOW - 300], ["stale by 1 s", NOW - 301], ["future by 1 s", NOW + 301],
    ["milliseconds", NOW * 1000],
  ]) {
    const headers = { "x-slack-request-timestamp": String(ts), "x-slack-signature": "v0=" + hmacHex(secret, `v0:${ts}:${payload}`) };
    add("slack", name, secret, { headers, body: payload },
      judge(() => verifySlackRequest({ signingSecret: secret, body: payload, headers: { ...headers, "x-slack-request-timestamp": Number(ts) }, nowMilliseconds: NOW * 1000 })));
  }
}

// Linear: signed as Linear documents it, judged by the SDK's webhook client.
{
  const secret = "linear_vectors_secret";
  const client = new LinearWebhookClient(secret);
  for (const [name, ms] of [
    ["signed now", NOW * 1000], ["edge of the past", NOW * 1000 - 60000], ["stale by 1 ms", NOW * 1000 - 60001],
    ["future by 1 ms", NOW * 1000 + 60001], ["seconds instead of milliseconds", NOW], ["1e300", 1e300],
  ]) {
    const payload = `{"action":"create","type":"Issue","createdAt":"2025-12-31T23:59:00.000Z","webhookId":"wh_1","webhookTimestamp":${ms}}`;
    const sig = hmacHex(secret, payload);
    add("linear", name, secret, { headers: { "linear-signature": sig, "linear-delivery": "d-1" }, body: payload },
      judge(() => client.verify(Buffer.from(payload), sig)));
  }
}

// Shopify: signed as Shopify documents it, judged by shopify-api's
// webhooks.validate on a Node request.
{
  const secret = "shpss_vectors_secret";
  const shopify = shopifyApi({ apiSecretKey: secret, apiKey: "k", scopes: [], hostName: "example.com",
    apiVersion: ApiVersion.October25, isEmbeddedApp: false, logger: { level: 0 } });
  const payload = '{"id":820982911946154508,"updated_at":"2025-12-31T23:00:00-05:00"}';
  const good = crypto.createHmac("sha256", secret).update(payload).digest("base64");
  // The MAC's 32 bytes leave 2 spare bits in the last base64 digit.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const odd = good.slice(0, -2) + alphabet[alphabet.indexOf(good.at(-2)) | 1] + "=";
  for (const [name, sig, bodyRecv] of [
    ["signed now", good, payload], ["body changed", good, payload.replace("23:00", "23:01")],
    ["wrong secret", crypto.createHmac("sha256", "other").update(payload).digest("base64"), payload],
    ["non-canonical base64", odd, payload],
  ]) {
    const headers = { "x-shopify-hmac-sha256": sig, "x-shopify-topic": "orders/updated", "x-shopify-shop-domain": "x.myshopify.com",
      "x-shopify-api-version": "2025-10", "x-shopify-webhook-id": "w1" };
    const req = new http.IncomingMessage(new net.Socket());
    Object.assign(req, { headers, method: "POST", url: "/hook" });
    const res = await shopify.webhooks.validate({ rawBody: bodyRecv, rawRequest: req, rawResponse: new http.ServerResponse(req) });
    add("shopify", name, secret, { headers, body: bodyRecv }, res.valid === true);
  }
}

Date.now = realNow;
process.stdout.write(JSON.stringify({ generated_by: "inbox/verify/testdata/sdk/generate.mjs", now: NOW, vectors }, null, 1) + "\n");
