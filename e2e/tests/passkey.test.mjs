// Passkeys in Chromium, through its virtual authenticators (DevTools protocol, WebAuthn domain): a
// product that requires two-step verification leads a user with no second factor through adding a
// passkey; she adds a second one from another authenticator, renames and removes them; a passkey
// signs in on its own (discoverable, passwordless) and as the second factor after a password. A
// tampered, replayed or removed passkey is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { launchChromium, porticoBin, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev({ host: 'localhost' }); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

const ADA = ['ada@example.test', 'correct horse battery staple'];

/** A browser context with one virtual authenticator (user verification on, presence automatic). */
async function withAuthenticator(options = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const add = (extra) => cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true, ...extra },
  }).then((r) => r.authenticatorId);
  const authenticator = await add(options);
  return { context, page, cdp, authenticator, add };
}

/** Clicks and waits for the page that follows (the same URL, often). */
async function clickThrough(page, name) {
  const next = page.waitForNavigation();
  await page.getByRole('button', { name, exact: true }).click();
  await next;
}

async function password(page, [email, pass]) {
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', pass);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** The ID token's claims on the demo's callback page (its header and payload, pretty-printed). */
async function idToken(page) {
  const text = await page.locator('pre').nth(1).textContent();
  return JSON.parse(text.slice(text.indexOf('}\n{') + 2));
}

/** The passkeys listed on the account page: [name, added, last used]. */
async function listed(page) {
  await page.goto(`${dev.base}/account`);
  const rows = page.locator('table[aria-label=Passkeys] tr');
  const out = [];
  for (let i = 1; i < await rows.count(); i += 1) {
    const row = rows.nth(i);
    out.push([await row.locator('input[name=name]').inputValue(), (await row.locator('td').nth(2).textContent()).trim()]);
  }
  return out;
}

let copied; // a credential of ada's, exported from the authenticator it was made on

test('a product that requires MFA leads through adding a passkey; several are kept, named and used', async () => {
  const a = await withAuthenticator();
  const { page } = a;
  await page.goto(`${dev.base}/demo/login/payments-web`);
  assert.ok(await page.getByRole('button', { name: 'Sign in with a passkey' }).isVisible(), 'the login page offers passkeys');
  await page.screenshot({ path: `${shots}/21-login-with-passkey-button.png`, fullPage: true });
  await password(page, ADA);
  await page.waitForURL(/\/login\/second-factor/);
  await page.screenshot({ path: `${shots}/22-mfa-required-passkey-choice.png`, fullPage: true });
  await page.getByRole('button', { name: 'Add a passkey instead' }).click();
  // Her first second factor: recovery codes, shown once.
  await page.waitForSelector('#recovery-codes');
  assert.equal((await page.locator('#recovery-codes code').allTextContents()).length, 10);
  await page.getByRole('link', { name: 'Done' }).click();
  // Back at the second-factor step, which now asks for the passkey she just added.
  await page.waitForURL(/\/login\/second-factor/);
  await page.screenshot({ path: `${shots}/23-second-factor-passkey.png`, fullPage: true });
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  await page.waitForURL(/\/demo\/callback\/payments-web/);
  const claims = await idToken(page);
  assert.deepEqual(claims.amr, ['pwd', 'hwk']);
  assert.equal(claims.acr, 'urn:portico:acr:mfa');
  await page.screenshot({ path: `${shots}/24-passkey-step-up-tokens.png`, fullPage: true });

  // The account page lists it; she names it.
  let keys = await listed(page);
  assert.equal(keys.length, 1);
  assert.equal(keys[0][0], 'Passkey');
  assert.notEqual(keys[0][1], 'never', 'its last use is shown');
  await page.fill('table[aria-label=Passkeys] input[name=name]', 'Laptop');
  await clickThrough(page, 'Rename');

  // A second authenticator (a USB security key): the laptop's is put away, so the browser uses the key.
  await a.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: a.authenticator });
  const key = await a.add({ transport: 'usb' });
  await page.fill('#passkey-name', 'Security key');
  await clickThrough(page, 'Add a passkey');
  keys = await listed(page);
  assert.deepEqual(keys.map((k) => k[0]), ['Laptop', 'Security key']);
  assert.equal(keys[1][1], 'never');
  await page.screenshot({ path: `${shots}/25-account-passkeys.png`, fullPage: true });
  // Registering the same authenticator again is refused by the browser (it is excluded).
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.waitForSelector('.passkey-status');
  assert.equal((await listed(page)).length, 2);

  const { credentials } = await a.cdp.send('WebAuthn.getCredentials', { authenticatorId: key });
  assert.equal(credentials.length, 1);
  assert.ok(credentials[0].isResidentCredential, 'discoverable, so it signs in without a password');
  copied = credentials[0];
  await a.context.close();
});

/** A fresh browser whose authenticator holds the copied passkey (as if synced to another device). */
async function deviceWith() {
  const d = await withAuthenticator();
  const { credentialId, isResidentCredential, rpId, privateKey, userHandle, signCount } = copied;
  await d.cdp.send('WebAuthn.addCredential', {
    authenticatorId: d.authenticator,
    credential: { credentialId, isResidentCredential, rpId, privateKey, userHandle, signCount },
  });
  return d;
}

/** Closes a device, keeping its signature counter for the next copy (a counter that goes back is
 * refused as a cloned authenticator). */
async function putAway(d) {
  const { credentials } = await d.cdp.send('WebAuthn.getCredentials', { authenticatorId: d.authenticator });
  copied.signCount = Math.max(copied.signCount, ...credentials.map((c) => c.signCount));
  await d.context.close();
}

test('a passkey signs in on its own, and as the second factor after a password', async () => {
  const d = await deviceWith();
  await d.page.goto(`${dev.base}/demo/login/crm-web`);
  await d.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await d.page.waitForURL(/\/demo\/callback\/crm-web/);
  const claims = await idToken(d.page);
  assert.deepEqual(claims.amr, ['hwk', 'mfa']);
  assert.equal(claims.acr, 'urn:portico:acr:mfa');
  assert.equal(claims.email, 'ada@example.test');
  await d.page.screenshot({ path: `${shots}/26-passwordless-tokens.png`, fullPage: true });
  // Payments (MFA required) needs nothing more from this session.
  await d.page.goto(`${dev.base}/demo/login/payments-web`);
  await d.page.waitForURL(/\/demo\/callback\/payments-web/);
  const keys = await listed(d.page);
  assert.notEqual(keys.find((k) => k[0] === 'Security key')[1], 'never');
  await putAway(d);

  const e = await deviceWith();
  await e.page.goto(`${dev.base}/demo/login/crm-web`);
  await password(e.page, ADA);
  await e.page.waitForURL(/\/login\/mfa/);
  await e.page.screenshot({ path: `${shots}/27-login-mfa-passkey.png`, fullPage: true });
  await e.page.getByRole('button', { name: 'Use a passkey' }).click();
  await e.page.waitForURL(/\/demo\/callback\/crm-web/);
  assert.deepEqual((await idToken(e.page)).amr, ['pwd', 'hwk']);
  await putAway(e);
});

test('a disabled user\'s passkey signs in no more', async () => {
  // The CLI on the dev server's own store, as an administrator would.
  const dataDir = dev.output().match(/data in ([^)]+)\)/)[1];
  const cli = (...args) => execFileSync(porticoBin(), [...args, '--data-dir', dataDir], { stdio: 'pipe' });
  cli('user', 'disable', 'ada@example.test');
  const d = await deviceWith();
  await d.page.goto(`${dev.base}/demo/login/crm-web`);
  await d.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await d.page.waitForSelector('text=Passkey not accepted');
  const res = await d.page.request.get(`${dev.base}/account`, { maxRedirects: 0 });
  assert.equal(res.status(), 303, 'no session');
  await putAway(d);
  cli('user', 'enable', 'ada@example.test');
});

/** Runs a passwordless ceremony in the page without submitting it: the form's fields. */
async function assertion(page) {
  return page.evaluate(async () => {
    const form = document.getElementById('passkey-login');
    const csrf = form.elements.csrf.value;
    const res = await fetch('/login/passkey/options', { method: 'POST', body: new URLSearchParams({ csrf }) });
    const { token, publicKey } = await res.json();
    const cred = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey) });
    return { csrf, token, credential: JSON.stringify(cred.toJSON()) };
  });
}

const flip = (b64) => (b64[10] === 'A' ? `${b64.slice(0, 10)}B${b64.slice(11)}` : `${b64.slice(0, 10)}A${b64.slice(11)}`);

test('a tampered, replayed or removed passkey is refused', async () => {
  const d = await deviceWith();
  const { page } = d;
  await page.goto(`${dev.base}/login`);
  const signedIn = async () => !(await (await page.request.get(`${dev.base}/account`, { maxRedirects: 0 })).headers().location);

  // A changed signature, then changed client data: refused, no session.
  for (const tamper of [(r) => { r.signature = flip(r.signature); }, (r) => { r.clientDataJSON = flip(r.clientDataJSON); }]) {
    const form = await assertion(page);
    const cred = JSON.parse(form.credential);
    tamper(cred.response);
    const res = await page.request.post(`${dev.base}/login/passkey`, { form: { ...form, credential: JSON.stringify(cred) }, maxRedirects: 0 });
    assert.equal(res.status(), 401);
    assert.match(await res.text(), /not accepted/);
    assert.equal(await signedIn(), false);
  }
  // A genuine answer signs in once; the same answer again is refused (its challenge is spent).
  const form = await assertion(page);
  const first = await page.request.post(`${dev.base}/login/passkey`, { form, maxRedirects: 0 });
  assert.equal(first.status(), 303);
  assert.equal(await signedIn(), true);
  const again = await page.request.post(`${dev.base}/login/passkey`, { form, maxRedirects: 0 });
  assert.equal(again.status(), 401);

  // She removes the passkey; it signs in no more.
  await page.goto(`${dev.base}/account`);
  await clickThrough(page, 'Remove passkey Security key');
  assert.deepEqual((await listed(page)).map((k) => k[0]), ['Laptop']);
  await putAway(d);
  const gone = await deviceWith();
  await gone.page.goto(`${dev.base}/demo/login/crm-web`);
  await gone.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await gone.page.waitForSelector('text=Passkey not accepted');
  await gone.page.screenshot({ path: `${shots}/28-passkey-refused.png`, fullPage: true });
  await gone.context.close();
});
