// response_mode=web_message across origins, over HTTPS with a certificate made now: Portico at
// id.example.test, the product's pages at app.example.test (same site, registered origin) and the
// same pages at evil.acme.test (another site, not registered).
//  - a popup login posts the response to the registered origin only; a page on an unregistered
//    origin that opens the same popup receives nothing;
//  - silent authentication in a hidden iframe works same-site; an unregistered origin cannot frame
//    the response, and nobody can frame the login page.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { freePort, launchAcrossSites, listenHttps, shots, startServe, testCertificate } from './harness.mjs';

let tls;
let portico;
let app;
let appPort;
let browser;

// The product's pages: open a popup, or frame silently, at the URL `u`; record every message.
const PAGE = `<!doctype html><meta charset="utf-8"><title>App</title>
<button id="go">Sign in</button><div id="out"></div>
<script>
window.messages = [];
window.addEventListener('message', (e) => { window.messages.push({ origin: e.origin, data: e.data }); });
const u = new URLSearchParams(location.search).get('u');
document.getElementById('go').onclick = () => window.open(u, 'portico', 'width=480,height=640');
if (location.pathname === '/silent') {
  const f = document.createElement('iframe');
  f.style.display = 'none';
  f.src = u;
  document.body.appendChild(f);
}
</script>`;

before(async () => {
  tls = testCertificate();
  appPort = await freePort();
  app = await listenHttps(tls, appPort, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  portico = await startServe({
    host: 'id.example.test',
    tls,
    suite: () => `
[[product]]
slug = "crm"
name = "CRM"
audience = "https://crm.example.test"
[product.roles]
viewer = ["read:contacts"]

[[client]]
id = "crm-spa"
name = "CRM"
product = "crm"
kind = "public"
redirect_uris = ["https://app.example.test:${appPort}/callback"]
web_origins = ["https://app.example.test:${appPort}"]
first_party = true

[[user]]
email = "ada@example.test"
name = "Ada Lovelace"
password = "correct horse battery staple"

[[grant]]
user = "ada@example.test"
product = "crm"
roles = ["viewer"]
`,
  });
  browser = await launchAcrossSites();
});

after(async () => {
  await browser?.close();
  await portico?.stop();
  app?.close();
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

function authorizeUrl(extra = {}) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'crm-spa', redirect_uri: `https://app.example.test:${appPort}/callback`,
    scope: 'openid', state: randomBytes(8).toString('hex'), code_challenge: challenge, code_challenge_method: 'S256',
    response_mode: 'web_message', ...extra,
  });
  return { url: `${portico.base}/oauth2/authorize?${q}`, state: q.get('state') };
}

const appOrigin = () => `https://app.example.test:${appPort}`;
const evilOrigin = () => `https://evil.acme.test:${appPort}`;
const messages = (page) => page.evaluate(() => window.messages);
const settle = () => new Promise((r) => setTimeout(r, 1500));

test('a popup login posts the response to the registered origin only', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const { url, state } = authorizeUrl();
  await page.goto(`${appOrigin()}/app?u=${encodeURIComponent(url)}`);
  const [popup] = await Promise.all([context.waitForEvent('page'), page.click('#go')]);
  await popup.waitForURL(/\/login/);
  await popup.fill('input[name=email]', 'ada@example.test');
  await popup.fill('input[name=password]', 'correct horse battery staple');
  await popup.screenshot({ path: `${shots}/12-web-message-popup-login.png` });
  await Promise.all([popup.waitForEvent('close'), popup.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  await page.waitForFunction(() => window.messages.length > 0);
  const [m] = await messages(page);
  assert.equal(m.origin, portico.base);
  assert.equal(m.data.type, 'authorization_response');
  assert.equal(m.data.response.state, state);
  assert.equal(m.data.response.iss, portico.base);
  assert.match(m.data.response.code, /^[A-Za-z0-9_-]{20,}$/);

  // The same popup opened by a page of another site: signed in already, the response page posts
  // at once — to the registered origin, so this page receives nothing.
  const evil = await context.newPage();
  await evil.goto(`${evilOrigin()}/app?u=${encodeURIComponent(authorizeUrl().url)}`);
  const [evilPopup] = await Promise.all([context.waitForEvent('page'), evil.click('#go')]);
  await evilPopup.waitForEvent('close');
  await settle();
  assert.deepEqual(await messages(evil), [], 'no message for an unregistered origin');
  await context.close();
});

test('silent authentication in a hidden iframe works same-site and not from another site', async () => {
  const context = await browser.newContext();
  // Sign in first (a popup, as above), then frame silently.
  const page = await context.newPage();
  await page.goto(`${portico.base}/account`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/account/);

  const { url, state } = authorizeUrl({ prompt: 'none' });
  await page.goto(`${appOrigin()}/silent?u=${encodeURIComponent(url)}`);
  await page.waitForFunction(() => window.messages.length > 0);
  const [m] = await messages(page);
  assert.equal(m.origin, portico.base);
  assert.equal(m.data.response.state, state);
  assert.ok(m.data.response.code, JSON.stringify(m.data));

  // Another site's page cannot frame the response: the browser blocks the frame (frame-ancestors).
  const evil = await context.newPage();
  await evil.goto(`${evilOrigin()}/silent?u=${encodeURIComponent(authorizeUrl({ prompt: 'none' }).url)}`);
  await settle();
  assert.deepEqual(await messages(evil), []);
  const blocked = evil.frames().find((f) => f !== evil.mainFrame());
  assert.ok(blocked && !blocked.url().startsWith(portico.base), `the frame did not load Portico: ${blocked?.url()}`);

  // And the login page cannot be framed even by the registered origin.
  const login = await context.newPage();
  await login.goto(`${appOrigin()}/silent?u=${encodeURIComponent(`${portico.base}/login`)}`);
  await settle();
  const frame = login.frames().find((f) => f !== login.mainFrame());
  assert.ok(frame && !frame.url().startsWith(portico.base), `the login page was framed: ${frame?.url()}`);
  await context.close();
});
