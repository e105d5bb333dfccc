// The browser SDK (sdk/js, built to dist/portico.js) in Chromium against the real Portico, over
// HTTPS on names of their own: Portico at id.example.test, the app at app.example.test.
//  - a redirect sign-in returns to its returnTo with exactly one code exchange, however often the
//    callback runs (twice at once, a reload), and the URL is cleaned;
//  - two tabs' sign-ins finished in reverse order both succeed;
//  - five tabs whose access tokens expired together make one refresh, and all end with the same
//    refresh token; signing out in one tab signs out all of them within a second;
//  - a tenant switch goes through the refresh grant: no navigation, one request;
//  - a popup sign-in works, also when the app sends Cross-Origin-Opener-Policy: same-origin;
//  - no bearer token appears in any URL the browser requests.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, test } from 'node:test';
import { freePort, launchAcrossSites, listenHttps, shots, startServe, testCertificate } from './harness.mjs';

const SDK = new URL('../../sdk/js/dist/portico.js', import.meta.url);

let tls;
let portico;
let app;
let appPort;
let browser;

const appOrigin = () => `https://app.example.test:${appPort}`;
const CRM_API_SECRET = 'crm-api-secret-0123456789abcdef0123456789';
const REPORTS_API_SECRET = 'reports-api-secret-0123456789abcdef01234567';

/** A backend's form POST to Portico (over loopback, Portico's name for TLS and Host), as a
 * confidential client, or as none (a public client names itself in the form). */
function porticoPost(path, form, client, secret) {
  const body = new URLSearchParams(form).toString();
  const host = new URL(portico.base);
  const headers = { host: host.host, 'content-type': 'application/x-www-form-urlencoded' };
  if (client) headers.authorization = `Basic ${Buffer.from(`${client}:${secret}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: host.port, path, method: 'POST', servername: host.hostname, ca: readFileSync(tls.cert), headers,
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text || 'null') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** CRM's backend: a hand-off link for its signed-in user (the SPA's token as the subject). */
async function crmHandoff(req, res) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  const { context, organization } = JSON.parse(raw);
  const subject = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  const answer = await porticoPost('/oauth2/handoff', { subject_token: subject, resource: 'https://reports.example.test', organization, context }, 'crm-api', CRM_API_SECRET);
  if (answer.status !== 200) {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: answer.body.error }));
    return;
  }
  const url = new URL(answer.body.handoff_uri);
  url.searchParams.set('handoff_code', answer.body.handoff_code);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ url: url.href }));
}

/** Reports' hand-off page: its backend redeems the code and shows where the user landed. */
async function reportsLanding(url, res) {
  const answer = await porticoPost('/oauth2/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: url.searchParams.get('handoff_code') ?? '',
    subject_token_type: 'urn:portico:token-type:handoff',
  }, 'reports-api', REPORTS_API_SECRET);
  const claims = answer.status === 200 ? JSON.parse(Buffer.from(answer.body.access_token.split('.')[1], 'base64url').toString()) : {};
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Reports</title><h1>Reports</h1><p id="landed">${answer.status === 200 ? `${claims.org_name}: ${answer.body.context}` : `refused: ${answer.body.error}`}</p>`);
}

// Every page of the app: the SDK, an event log, the callback handled on /callback.
const page = (issuer) => `<!doctype html><meta charset="utf-8"><title>CRM</title>
<h1>CRM</h1><p id="state">…</p><button id="popup">Sign in in a popup</button><button id="reports">Open the report in Reports</button><pre id="log"></pre>
<script type="module">
import { createPortico } from '/portico.js';
const portico = createPortico({ issuer: ${JSON.stringify(issuer)}, clientId: 'crm-spa', redirectUri: location.origin + '/callback',
  singleSession: localStorage.getItem('test:single') === '1', handoffEndpoint: location.origin + '/api/handoff' });
window.portico = portico;
window.events = [];
const show = async () => {
  const user = await portico.getUser();
  document.getElementById('state').textContent = (await portico.isAuthenticated()) ? 'Signed in as ' + user.name : 'Signed out';
};
portico.onAuthStateChange((e) => {
  window.events.push(e.type);
  document.getElementById('log').textContent += e.type + '\\n';
  if (e.type === 'session_replaced') document.getElementById('state').textContent = 'Signed out: a newer session of CRM started in another tab';
  else show();
});
window.silent = () => portico.signInSilently({ organization: 'acme' }).then((ok) => ok, (e) => e.reason);
document.getElementById('reports').onclick = () => { window.opened = portico.openProduct('reports', { context: 'report=42' }).then(() => 'ok', (e) => e.reason); };
document.getElementById('popup').onclick = () => { window.popupResult = portico.loginWithPopup({ organization: 'acme' }).then(() => 'ok', (e) => e.reason); };
if (location.pathname === '/callback') {
  const url = location.href;
  // A double mount: two calls at once, the second with the URL as it was.
  window.callback = Promise.all([portico.handleRedirectCallback(), portico.handleRedirectCallback(url)])
    .then(([a, b]) => ({ a: a.returnTo, b: b.returnTo }), (e) => ({ error: e.reason }));
  window.callback.then(show);
} else {
  show();
}
// Test scaffolding: what the SDK stored (IndexedDB), and a way to age it.
const idb = (mode, fn) => new Promise((resolve, reject) => {
  const open = indexedDB.open('portico', 1);
  open.onupgradeneeded = () => open.result.createObjectStore('kv');
  open.onsuccess = () => {
    const t = open.result.transaction('kv', mode);
    const out = fn(t.objectStore('kv'));
    t.oncomplete = () => resolve(out.result);
    t.onerror = () => reject(t.error);
  };
});
window.storedTokens = async () => {
  const keys = await idb('readonly', (s) => s.getAllKeys());
  const values = await idb('readonly', (s) => s.getAll());
  return keys.map((k, i) => [k, values[i]]).filter(([k]) => k.includes(':tokens:')).map(([, v]) => JSON.parse(v));
};
window.clearStore = () => idb('readwrite', (s) => s.clear());
window.expireTokens = async () => {
  const keys = (await idb('readonly', (s) => s.getAllKeys())).filter((k) => k.includes(':tokens:'));
  for (const k of keys) {
    const v = JSON.parse(await idb('readonly', (s) => s.get(k)));
    await idb('readwrite', (s) => s.put(JSON.stringify({ ...v, expiresAt: 0 }), k));
  }
};
window.ready = true;
</script>`;

before(async () => {
  tls = testCertificate();
  appPort = await freePort();
  portico = await startServe({
    host: 'id.example.test',
    tls,
    suite: (port) => `
[[product]]
slug = "crm"
name = "CRM"
audience = "https://crm.example.test"
tenant_aware = true
handoff_to = ["reports"]
[product.roles]
viewer = ["read:contacts"]
editor = ["read:contacts", "write:contacts"]

[[client]]
id = "crm-spa"
name = "CRM"
product = "crm"
kind = "public"
redirect_uris = ["https://app.example.test:${appPort}/callback"]
web_origins = ["https://app.example.test:${appPort}"]
grant_types = ["authorization_code", "refresh_token"]
first_party = true

[[product]]
slug = "reports"
name = "Reports"
audience = "https://reports.example.test"
tenant_aware = true
[product.roles]
analyst = ["read:reports"]

[[client]]
id = "crm-api"
product = "crm"
kind = "confidential"
secret = "${CRM_API_SECRET}"
grant_types = ["client_credentials"]

[[client]]
id = "reports-api"
product = "reports"
kind = "confidential"
secret = "${REPORTS_API_SECRET}"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
handoff_uri = "https://reports.example.test:${appPort}/handoff"
first_party = true

[[grant]]
user = "ada@example.test"
product = "reports"
tenant = "acme"
roles = ["analyst"]

[[tenant]]
slug = "acme"
name = "Acme Bank"

[[tenant]]
slug = "globex"
name = "Globex"

[[user]]
email = "ada@example.test"
name = "Ada Lovelace"
password = "correct horse battery staple"

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "acme"
roles = ["editor"]

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "globex"
roles = ["viewer"]
`,
  });
  const html = page(portico.base);
  app = await listenHttps(tls, appPort, (req, res) => {
    const url = new URL(req.url, appOrigin());
    if (url.pathname === '/api/handoff' && req.method === 'POST') {
      crmHandoff(req, res);
      return;
    }
    if ((req.headers.host ?? '').startsWith('reports.') && url.pathname === '/handoff') {
      reportsLanding(url, res);
      return;
    }
    if (url.pathname === '/portico.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(readFileSync(SDK));
      return;
    }
    const headers = { 'content-type': 'text/html; charset=utf-8' };
    if (url.searchParams.has('coop')) headers['cross-origin-opener-policy'] = 'same-origin';
    res.writeHead(200, headers);
    res.end(html);
  });
  browser = await launchAcrossSites([
    // Third-party cookies blocked, as browsers now do: nothing here may depend on them.
    '--test-third-party-cookie-phaseout',
  ]);
});

after(async () => {
  await browser?.close();
  await portico?.stop();
  app?.close();
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

/** A browser context that records every request's URL and every token request's grant. */
async function recordedContext() {
  const context = await browser.newContext();
  const urls = [];
  const grants = [];
  context.on('request', (r) => {
    urls.push(r.url());
    if (r.method() === 'POST' && r.url() === `${portico.base}/oauth2/token`) {
      const form = new URLSearchParams(r.postData() ?? '');
      grants.push({ grant: form.get('grant_type'), organization: form.get('organization') });
    }
  });
  return { context, urls, grants };
}

async function open(context, path = '/app') {
  const p = await context.newPage();
  await p.goto(`${appOrigin()}${path}`);
  await p.waitForFunction(() => window.ready === true);
  return p;
}

async function signInAtPortico(p) {
  await p.waitForURL(/id\.example\.test.*\/login/);
  await p.fill('input[name=email]', 'ada@example.test');
  await p.fill('input[name=password]', 'correct horse battery staple');
  await Promise.all([p.waitForURL(/app\.example\.test.*\/callback/), p.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  await p.waitForFunction(() => window.callback !== undefined);
  return p.evaluate(() => window.callback);
}

/** Signs in with a redirect from a fresh tab of `context`; returns the tab. */
async function signIn(context, returnTo = '/home') {
  const p = await open(context, '/start');
  await p.evaluate((r) => { window.portico.loginWithRedirect({ returnTo: r, organization: 'acme' }); }, returnTo);
  const result = await signInAtPortico(p);
  assert.deepEqual(result, { a: returnTo, b: returnTo });
  return p;
}

const tokenGrants = (grants, grant) => grants.filter((g) => g.grant === grant);

test('a redirect sign-in: one code exchange, its returnTo, a clean URL, and none again on reload', async () => {
  const { context, grants, urls } = await recordedContext();
  const p = await signIn(context, '/reports/42?tab=summary');
  assert.equal(tokenGrants(grants, 'authorization_code').length, 1, JSON.stringify(grants));
  assert.equal(new URL(p.url()).search, '', `the callback URL was cleaned: ${p.url()}`);
  await p.waitForFunction(() => document.getElementById('state').textContent.startsWith('Signed in'));
  await p.screenshot({ path: `${shots}/40-sdk-signed-in.png` });
  // The callback URL again (a reload of it, the back button): the same answer, no exchange.
  const callbackUrl = urls.find((u) => u.startsWith(`${appOrigin()}/callback?`));
  await p.goto(callbackUrl);
  await p.waitForFunction(() => window.ready === true);
  assert.deepEqual(await p.evaluate(() => window.callback), { a: '/reports/42?tab=summary', b: '/reports/42?tab=summary' });
  assert.equal(tokenGrants(grants, 'authorization_code').length, 1, 'no second exchange');
  // A returnTo that would leave the app comes back as '/'.
  const q = await open(context, '/start');
  await q.evaluate(() => { window.portico.loginWithRedirect({ returnTo: '//evil.test/x', organization: 'acme' }); });
  await q.waitForURL(/app\.example\.test.*\/callback/);
  await q.waitForFunction(() => window.callback !== undefined);
  assert.deepEqual(await q.evaluate(() => window.callback), { a: '/', b: '/' });
  // No token in any URL the browser asked for.
  const tokens = await q.evaluate(() => window.storedTokens());
  assert.ok(tokens.length > 0);
  for (const t of tokens) {
    for (const secret of [t.accessToken, t.refreshToken]) assert.ok(!urls.some((u) => u.includes(secret)), 'a token in a URL');
  }
  await context.close();
});

test('two tabs sign in and finish in reverse order: both succeed', async () => {
  const { context, grants } = await recordedContext();
  const one = await open(context, '/start');
  const two = await open(context, '/start');
  await one.evaluate(() => { window.portico.loginWithRedirect({ returnTo: '/one', organization: 'acme' }); });
  await one.waitForURL(/\/login/);
  await two.evaluate(() => { window.portico.loginWithRedirect({ returnTo: '/two', organization: 'acme' }); });
  assert.deepEqual(await signInAtPortico(two), { a: '/two', b: '/two' });
  // The first tab's sign-in finishes after: the session exists now, its login page still works.
  await one.fill('input[name=email]', 'ada@example.test');
  await one.fill('input[name=password]', 'correct horse battery staple');
  await Promise.all([one.waitForURL(/\/callback/), one.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  await one.waitForFunction(() => window.callback !== undefined);
  assert.deepEqual(await one.evaluate(() => window.callback), { a: '/one', b: '/one' });
  assert.equal(tokenGrants(grants, 'authorization_code').length, 2);
  await context.close();
});

test('five tabs whose tokens expired together refresh once; signing out in one signs out all', async () => {
  const { context, grants } = await recordedContext();
  const first = await signIn(context);
  const tabs = [first];
  for (let i = 0; i < 4; i += 1) tabs.push(await open(context));
  const before = await first.evaluate(() => window.portico.getAccessToken());
  // Every tab's copy expires at once: the stored one, and each tab's memory (reloaded).
  await first.evaluate(() => window.expireTokens());
  for (const t of tabs) {
    await t.reload();
    await t.waitForFunction(() => window.ready === true);
  }
  const refreshesBefore = tokenGrants(grants, 'refresh_token').length;
  const answers = await Promise.all(tabs.map((t) => t.evaluate(() => window.portico.getAccessToken().then((at) => ({ at }), (e) => ({ error: e.reason })))));
  assert.ok(answers.every((a) => a.at), JSON.stringify({ answers, grants, events: await Promise.all(tabs.map((t) => t.evaluate(() => window.events))) }));
  assert.equal(new Set(answers.map((a) => a.at)).size, 1, 'every tab has the one refreshed access token');
  assert.notEqual(answers[0].at, before);
  assert.equal(tokenGrants(grants, 'refresh_token').length - refreshesBefore, 1, 'exactly one refresh');
  const stored = await Promise.all(tabs.map((t) => t.evaluate(() => window.storedTokens())));
  assert.ok(stored.every((s) => s.length === 1));
  assert.equal(new Set(stored.map((s) => s[0].refreshToken)).size, 1, 'every tab holds the same refresh token');

  // Signing out in one tab: every other tab hears it within a second.
  const started = Date.now();
  await tabs[2].evaluate(() => window.portico.logout());
  await Promise.all(tabs.map((t) => t.waitForFunction(() => document.getElementById('state').textContent === 'Signed out', null, { timeout: 1000 })));
  console.log(`signed out in every tab after ${Date.now() - started} ms`);
  for (const t of tabs) assert.equal(await t.evaluate(() => window.portico.getAccessToken().then(() => 'token', (e) => e.reason)), 'login_required');
  await tabs[0].screenshot({ path: `${shots}/41-sdk-signed-out-everywhere.png` });
  await context.close();
});

test('switching tenant goes through the refresh grant, without a navigation', async () => {
  const { context, grants } = await recordedContext();
  const p = await signIn(context);
  const org = (at) => JSON.parse(Buffer.from(at.split('.')[1], 'base64url').toString()).org_name;
  const acme = await p.evaluate(() => window.portico.getAccessToken());
  assert.equal(org(acme), 'Acme Bank');
  await p.evaluate(() => { window.marker = 'same document'; });
  const before = grants.length;
  await p.evaluate(() => window.portico.switchOrganization('globex'));
  assert.deepEqual(grants.slice(before), [{ grant: 'refresh_token', organization: 'globex' }]);
  assert.equal(await p.evaluate(() => window.marker), 'same document', 'no navigation');
  assert.equal(org(await p.evaluate(() => window.portico.getAccessToken())), 'Globex');
  // Each tenant's token is kept apart: asking for Acme is Acme's, from the cache.
  assert.equal(org(await p.evaluate(() => window.portico.getAccessToken({ organization: 'acme' }))), 'Acme Bank');
  assert.equal(org(await p.evaluate(() => window.portico.getAccessToken({ organization: 'globex' }))), 'Globex');
  assert.equal(grants.length - before, 1, 'one switch to Globex; Acme (signed in as "acme") and Globex from the cache');
  assert.ok((await p.evaluate(() => window.events)).includes('organization_switched'));
  // A tenant without a grant: refused, and nothing is signed out.
  assert.equal(await p.evaluate(() => window.portico.getAccessToken({ organization: 'initech' }).then(() => 'token', (e) => e.reason)), 'access_denied');
  assert.equal(await p.evaluate(() => window.portico.isAuthenticated()), true);
  await context.close();
});

test('a popup sign-in, with and without Cross-Origin-Opener-Policy', async () => {
  for (const path of ['/app', '/app?coop=1']) {
    const { context, grants, urls } = await recordedContext();
    const p = await open(context, path);
    const [popup] = await Promise.all([context.waitForEvent('page'), p.click('#popup')]);
    await popup.waitForURL(/\/login/);
    await popup.fill('input[name=email]', 'ada@example.test');
    await popup.fill('input[name=password]', 'correct horse battery staple');
    await popup.screenshot({ path: `${shots}/42-sdk-popup${path.includes('coop') ? '-coop' : ''}.png` });
    await Promise.all([popup.waitForEvent('close'), popup.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    await p.waitForFunction(() => window.popupResult !== undefined);
    assert.equal(await p.evaluate(() => window.popupResult), 'ok', path);
    assert.equal(await p.evaluate(() => window.portico.isAuthenticated()), true, path);
    assert.equal(tokenGrants(grants, 'authorization_code').length, 1, path);
    // Cut off by the opener policy, the popup came back to the app's redirect URI instead of
    // posting a message; otherwise it never did.
    const cameBack = urls.some((u) => u.startsWith(`${appOrigin()}/callback?`));
    assert.equal(cameBack, path.includes('coop'), path);
    await context.close();
  }
  // The user closes the popup: the promise settles with popup_closed.
  const context = await browser.newContext();
  const p = await open(context);
  const [popup] = await Promise.all([context.waitForEvent('page'), p.click('#popup')]);
  await popup.waitForURL(/\/login/);
  await popup.waitForTimeout(5500); // past the window in which a closed popup reads as cut off by COOP
  await popup.close();
  await p.waitForFunction(() => window.popupResult !== undefined, null, { timeout: 5000 });
  assert.equal(await p.evaluate(() => window.popupResult), 'popup_closed');
  await context.close();
});

test('one session per browser: a newer session signs the older tab out, and it says so', async () => {
  const { context } = await recordedContext();
  await context.addInitScript(() => localStorage.setItem('test:single', '1'));
  const older = await signIn(context);
  assert.ok(await older.evaluate(() => window.portico.getAccessToken()));
  // A new sign-in in another tab (prompt=login: a new session).
  const newer = await open(context, '/start');
  await newer.evaluate(() => { window.portico.loginWithRedirect({ prompt: 'login', organization: 'acme' }); });
  await signInAtPortico(newer);
  await older.waitForFunction(() => window.events.includes('session_replaced'), null, { timeout: 2000 });
  assert.equal(await older.evaluate(() => window.portico.getAccessToken().then(() => 'token', (e) => e.reason)), 'session_replaced');
  assert.match(await older.textContent('#state'), /newer session/);
  await older.screenshot({ path: `${shots}/43-sdk-session-replaced.png` });
  assert.ok(await newer.evaluate(() => window.portico.getAccessToken()), 'the newer tab goes on');
  assert.ok(!(await newer.evaluate(() => window.events)).includes('session_replaced'));
  await context.close();
});

test('openProduct: a new tab of another product, signed in, with the context, and only a code in its URL', async () => {
  const { context, urls } = await recordedContext();
  const p = await signIn(context);
  const [tab] = await Promise.all([context.waitForEvent('page'), p.click('#reports')]);
  await tab.waitForURL(/reports\.example\.test.*\/handoff\?handoff_code=/);
  await tab.waitForSelector('#landed');
  assert.equal(await tab.textContent('#landed'), 'Acme Bank: report=42');
  assert.equal(await p.evaluate(() => window.opened), 'ok');
  const landing = new URL(tab.url());
  assert.deepEqual([...landing.searchParams.keys()], ['handoff_code'], 'the code is the one parameter of the URL');
  await tab.screenshot({ path: `${shots}/44-sdk-open-product.png` });
  // The code was good once: the same URL again lands nowhere.
  await tab.reload();
  assert.match(await tab.textContent('#landed'), /^refused: invalid_request/);
  const tokens = await p.evaluate(() => window.storedTokens());
  for (const t of tokens) assert.ok(!urls.some((u) => u.includes(t.accessToken) || u.includes(t.refreshToken)), 'a token in a URL');
  await context.close();
});

test('silent sign-in in a hidden frame, same-site, with third-party cookies blocked; it settles either way', { timeout: 60_000 }, async () => {
  const { context, grants } = await recordedContext();
  // Not signed in at Portico: answered false, quickly, without a navigation.
  const p = await open(context);
  const started = Date.now();
  assert.equal(await p.evaluate(() => window.silent()), false);
  assert.ok(Date.now() - started < 5000, 'settled by the answer, not by the timeout');
  // Signed in at Portico (another tab's redirect sign-in), this app's store emptied: the frame
  // signs the app in again, with one code exchange.
  const other = await signIn(context);
  await other.evaluate(() => window.clearStore());
  const fresh = await open(context);
  const exchanges = tokenGrants(grants, 'authorization_code').length;
  assert.equal(await fresh.evaluate(() => window.silent()), true);
  assert.equal(tokenGrants(grants, 'authorization_code').length, exchanges + 1);
  assert.equal(await fresh.evaluate(() => window.portico.isAuthenticated()), true);
  await context.close();
});

test('a refresh token revoked at Portico: the refresh fails and every tab is signed out', { timeout: 60_000 }, async () => {
  const { context } = await recordedContext();
  const one = await signIn(context);
  const two = await open(context);
  const [set] = await one.evaluate(() => window.storedTokens());
  // Revoked behind the app's back (the user signed out of it from the account page, say).
  await porticoPost('/oauth2/revoke', { client_id: 'crm-spa', token: set.refreshToken });
  await one.evaluate(() => window.expireTokens());
  await one.reload();
  await one.waitForFunction(() => window.ready === true);
  assert.equal(await one.evaluate(() => window.portico.getAccessToken().then(() => 'token', (e) => e.reason)), 'login_required');
  await two.waitForFunction(() => document.getElementById('state').textContent === 'Signed out', null, { timeout: 1000 });
  assert.deepEqual(await two.evaluate(() => window.storedTokens()), []);
  await context.close();
});
