// CORS, enforced by the browser itself: Portico at id.example.test, a single-page app on its
// registered origin app.example.test and the same page on evil.acme.test (another site, not
// registered), over HTTPS with a certificate made now.
//  - discovery and JWKS are readable from any page;
//  - the token, UserInfo and revocation endpoints answer the registered origin (pre-flights
//    included: the Authorization and DPoP headers need one), and a page elsewhere can neither read
//    them nor spend what it presents: its attempt leaves the code good for the app;
//  - introspection is not readable by any page, the app's included.
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

// The app's page: `call(url, init)` fetches across origins and reports what the page could read
// (or that the browser blocked it); every result is also printed, for the screenshot.
const PAGE = `<!doctype html><meta charset="utf-8"><title>App</title>
<h1>App on <span id="origin"></span></h1><pre id="out"></pre>
<script>
document.getElementById('origin').textContent = location.origin;
window.call = async (label, url, init) => {
  let result;
  try {
    const r = await fetch(url, init);
    result = { status: r.status, body: await r.text(), www: r.headers.get('www-authenticate') };
  } catch (e) {
    result = { blocked: String(e) };
  }
  document.getElementById('out').textContent += label + ': ' + (result.blocked ? 'blocked by the browser' : result.status) + '\\n';
  return result;
};
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

[[client]]
id = "crm-api"
product = "crm"
kind = "confidential"
secret = "crm-api-secret-0123456789abcdef0123456789"
grant_types = ["client_credentials"]

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

const appOrigin = () => `https://app.example.test:${appPort}`;
const evilOrigin = () => `https://evil.acme.test:${appPort}`;
const form = (o) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(o).toString() });
const call = (page, label, url, init) => page.evaluate(([l, u, i]) => window.call(l, u, i), [label, url, init]);

/** Signs ada in at Portico (a top-level navigation, as the app would) and returns the code. */
async function signIn(page) {
  const verifier = randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'crm-spa', redirect_uri: `${appOrigin()}/callback`, scope: 'openid profile offline_access',
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  });
  await page.goto(`${portico.base}/oauth2/authorize?${q}`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  return { code: new URL(page.url()).searchParams.get('code'), verifier };
}

test('the registered origin reads discovery, JWKS, tokens, UserInfo and revocation; no other origin can use them', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const { code, verifier } = await signIn(page);
  assert.ok(code);
  const redeem = form({ grant_type: 'authorization_code', client_id: 'crm-spa', code, redirect_uri: `${appOrigin()}/callback`, code_verifier: verifier });

  // Another site's page: the public documents yes, the code no, and the attempt spends nothing.
  const evil = await context.newPage();
  await evil.goto(`${evilOrigin()}/`);
  const evilDiscovery = await call(evil, 'discovery', `${portico.base}/.well-known/openid-configuration`);
  assert.equal(evilDiscovery.status, 200, JSON.stringify(evilDiscovery));
  assert.equal(JSON.parse(evilDiscovery.body).issuer, portico.base);
  const stolen = await call(evil, 'token (the app\'s code)', `${portico.base}/oauth2/token`, redeem);
  assert.ok(stolen.blocked, `another origin read the token answer: ${JSON.stringify(stolen)}`);
  await evil.screenshot({ path: `${shots}/30-cors-unregistered-origin.png` });

  // The app itself: discovery, JWKS, the code (still good), UserInfo with a pre-flighted
  // Authorization header, a refused token whose challenge it may read, revocation.
  const discovery = await call(page, 'discovery', `${portico.base}/.well-known/openid-configuration`);
  assert.equal(discovery.status, 200);
  const jwks = await call(page, 'jwks', `${portico.base}/oauth2/jwks`);
  assert.ok(JSON.parse(jwks.body).keys.length > 0);
  const tokens = await call(page, 'token', `${portico.base}/oauth2/token`, redeem);
  assert.equal(tokens.status, 200, JSON.stringify(tokens));
  const { access_token: access, refresh_token: refresh } = JSON.parse(tokens.body);
  const me = await call(page, 'userinfo', `${portico.base}/oauth2/userinfo`, { headers: { authorization: `Bearer ${access}` } });
  assert.equal(me.status, 200, JSON.stringify(me));
  assert.equal(JSON.parse(me.body).name, 'Ada Lovelace');
  const bad = await call(page, 'userinfo (bad token)', `${portico.base}/oauth2/userinfo`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(bad.status, 401);
  assert.match(bad.www, /invalid_token/, 'the challenge is exposed to the page');

  // The app's token, used from the other site: blocked before the page learns anything.
  const evilMe = await call(evil, 'userinfo (the app\'s token)', `${portico.base}/oauth2/userinfo`, { headers: { authorization: `Bearer ${access}` } });
  assert.ok(evilMe.blocked, JSON.stringify(evilMe));
  const evilRevoke = await call(evil, 'revoke (the app\'s token)', `${portico.base}/oauth2/revoke`, form({ client_id: 'crm-spa', token: refresh }));
  assert.ok(evilRevoke.blocked);
  const rotated = await call(page, 'refresh', `${portico.base}/oauth2/token`, form({ grant_type: 'refresh_token', client_id: 'crm-spa', refresh_token: refresh }));
  assert.equal(rotated.status, 200, `the other site revoked the token: ${JSON.stringify(rotated)}`);
  const next = JSON.parse(rotated.body).refresh_token;
  const revoked = await call(page, 'revoke', `${portico.base}/oauth2/revoke`, form({ client_id: 'crm-spa', token: next }));
  assert.equal(revoked.status, 200);
  const after = await call(page, 'refresh (revoked)', `${portico.base}/oauth2/token`, form({ grant_type: 'refresh_token', client_id: 'crm-spa', refresh_token: next }));
  assert.equal(JSON.parse(after.body).error, 'invalid_grant');

  // Introspection is for backends: not even the app's page reads it.
  const basic = `Basic ${Buffer.from('crm-api:crm-api-secret-0123456789abcdef0123456789').toString('base64')}`;
  const intro = await call(page, 'introspect', `${portico.base}/oauth2/introspect`, { ...form({ token: access }), headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic } });
  assert.ok(intro.blocked, JSON.stringify(intro));
  await page.screenshot({ path: `${shots}/31-cors-registered-origin.png` });
  await context.close();
});
