// The hosted pages' Content-Security-Policy limits where their forms may lead (`form-action`), and
// Chromium applies it to the redirects that follow a form's POST too. So every form that ends at
// a relying party on another site must still get there: Portico at id.example.test, the product at
// app.acme.test (another site), over HTTPS with a certificate made now.
//  - the sign-in form, then the consent form of a third-party client, end at its redirect URI;
//  - the form_post response's form posts to the redirect URI;
//  - the sign-out confirmation ends at the post-logout redirect URI;
//  - and a page with no pending request lets its forms reach Portico alone.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { after, before, test } from 'node:test';
import { freePort, launchChromium, shots, startServe, testCertificate } from './harness.mjs';

let tls;
let portico;
let app;
let appPort;
let browser;
const arrived = [];

before(async () => {
  tls = testCertificate();
  appPort = await freePort();
  // The relying party: records what reaches it (query or form body) and says so.
  app = createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const url = new URL(req.url, `https://app.acme.test:${appPort}`);
      const params = Object.fromEntries(req.method === 'POST' ? new URLSearchParams(body) : url.searchParams);
      arrived.push({ method: req.method, path: url.pathname, params });
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><meta charset="utf-8"><title>App</title><h1 id="arrived">${req.method} ${url.pathname}</h1>`);
    });
  });
  await new Promise((r) => app.listen(appPort, '127.0.0.1', r));
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
id = "partner-app"
name = "Partner App"
product = "crm"
kind = "public"
redirect_uris = ["https://app.acme.test:${appPort}/callback"]
post_logout_redirect_uris = ["https://app.acme.test:${appPort}/signed-out"]
first_party = false

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
  browser = await launchChromium([
    '--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.acme.test 127.0.0.1',
    '--ignore-certificate-errors',
  ]);
});

after(async () => {
  await browser?.close();
  await portico?.stop();
  app?.close();
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

const appOrigin = () => `https://app.acme.test:${appPort}`;
/** The last request that reached the relying party at `path` (not its favicon). */
const last = (path) => arrived.filter((a) => a.path === path).at(-1);

function authorizeUrl(extra = {}) {
  const verifier = randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'partner-app', redirect_uri: `${appOrigin()}/callback`, scope: 'openid',
    state: randomBytes(8).toString('hex'), code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256', ...extra,
  });
  return { url: `${portico.base}/oauth2/authorize?${q}`, state: q.get('state') };
}

/** Keeps the last document the page loaded (its response), for its headers. */
function watch(page) {
  const seen = { last: null };
  page.on('response', (r) => { if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) seen.last = r; });
  return seen;
}

/** The CSP's form-action directive of the document the page shows now. */
async function formAction(seen) {
  const csp = (await seen.last.allHeaders())['content-security-policy'] ?? '';
  return csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('form-action'));
}

test('sign-in and consent forms end at a relying party on another site', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = watch(page);
  const { url, state } = authorizeUrl();
  await page.goto(url);
  await page.waitForURL(/\/login/);
  assert.equal(await formAction(seen), `form-action 'self' ${appOrigin()}`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/consent/);
  assert.equal(await formAction(seen), `form-action 'self' ${appOrigin()}`);
  await page.screenshot({ path: `${shots}/40-consent-cross-site.png`, fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(`${appOrigin()}/callback?**`);
  assert.equal(await page.locator('#arrived').textContent(), 'GET /callback');
  const got = last('/callback');
  assert.equal(got.params.state, state);
  assert.match(got.params.code, /^[A-Za-z0-9_-]{20,}$/);
  await page.screenshot({ path: `${shots}/41-code-at-another-site.png`, fullPage: true });

  // form_post: the response page's form posts to the redirect URI (the session and consent stand).
  const post = authorizeUrl({ response_mode: 'form_post' });
  await page.goto(post.url);
  await page.waitForURL(`${appOrigin()}/callback`);
  assert.equal(await page.locator('#arrived').textContent(), 'POST /callback');
  assert.equal(last('/callback').params.state, post.state);
  assert.ok(last('/callback').params.code);
  assert.equal(last('/callback').method, 'POST');

  // Sign-out asks first (no ID token hint), then ends at the post-logout redirect URI.
  const q = new URLSearchParams({ client_id: 'partner-app', post_logout_redirect_uri: `${appOrigin()}/signed-out`, state: 'bye' });
  await page.goto(`${portico.base}/oauth2/logout?${q}`);
  assert.equal(await formAction(seen), `form-action 'self' ${appOrigin()}`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${appOrigin()}/signed-out?**`);
  assert.equal(last('/signed-out').params.state, 'bye');
  await context.close();
});

test('a page with no pending request lets its forms reach Portico alone', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = watch(page);
  await page.goto(`${portico.base}/login`);
  assert.equal(await formAction(seen), "form-action 'self'");
  await context.close();
});
