// Two-step verification in Chromium: set up an authenticator app from the account page (QR code
// drawn by the server), then sign in with password and code. The code is computed here, as an
// authenticator app would (RFC 6238: HMAC-SHA1, 6 digits, 30 s).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

const step = () => Math.floor(Date.now() / 1000 / 30);

test('set up an authenticator app, then sign in with password and code', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/account`);
  await page.fill('input[name=email]', 'grace@example.test');
  await page.fill('input[name=password]', 'debugging the harvard mark ii');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/account$/);
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  await page.waitForURL(/\/account\/totp\/start/);
  const qr = page.getByRole('img', { name: 'QR code for your authenticator app' });
  assert.ok(await qr.isVisible());
  assert.ok((await qr.evaluate((img) => img.naturalWidth)) > 0, 'the QR code renders');
  const secret = (await page.locator('#secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  await page.screenshot({ path: `${shots}/13-totp-enrol.png`, fullPage: true });
  const enrolStep = step();
  await page.fill('input[name=code]', totp(secret, enrolStep));
  await page.getByRole('button', { name: 'Turn on' }).click();
  // The recovery codes, shown this once.
  await page.waitForURL(/\/account\/totp\/confirm/);
  const codes = await page.locator('#recovery-codes code').allTextContents();
  assert.equal(codes.length, 10);
  await page.screenshot({ path: `${shots}/14-recovery-codes.png`, fullPage: true });
  await page.getByRole('link', { name: 'Done' }).click();
  await page.waitForURL(/\/account$/);
  assert.match(await page.locator('main').textContent(), /Authenticator app: on/);
  await page.screenshot({ path: `${shots}/14b-account-totp-on.png`, fullPage: true });
  await context.close();

  // Another browser: password, then the code page, then the product.
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(`${dev.base}/demo/login/crm-web`);
  await p2.fill('input[name=email]', 'grace@example.test');
  await p2.fill('input[name=password]', 'debugging the harvard mark ii');
  await p2.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p2.waitForURL(/\/login\/mfa/);
  assert.equal(await p2.getAttribute('input[name=code]', 'autocomplete'), 'one-time-code');
  await p2.fill('input[name=code]', '000000');
  await p2.getByRole('button', { name: 'Verify' }).click();
  assert.match(await p2.locator('.error').textContent(), /not right/);
  await p2.screenshot({ path: `${shots}/15-totp-code-refused.png`, fullPage: true });
  // The code of the next step: the one used to enrol is spent.
  await p2.fill('input[name=code]', totp(secret, enrolStep + 1));
  await p2.getByRole('button', { name: 'Verify' }).click();
  await p2.waitForURL(/\/demo\/callback\/crm-web/);
  const idToken = await p2.locator('pre').nth(1).textContent();
  assert.match(idToken, /"amr": \[\s*"pwd",\s*"otp"\s*\]/);
  assert.match(idToken, /"acr": "urn:portico:acr:mfa"/);
  await p2.screenshot({ path: `${shots}/16-totp-signed-in.png`, fullPage: true });
  await other.close();

  // A third browser, no phone: a recovery code instead, once.
  const third = await browser.newContext();
  const p3 = await third.newPage();
  await p3.goto(`${dev.base}/demo/login/crm-web`);
  await p3.fill('input[name=email]', 'grace@example.test');
  await p3.fill('input[name=password]', 'debugging the harvard mark ii');
  await p3.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p3.waitForURL(/\/login\/mfa/);
  await p3.fill('input[name=code]', codes[0]);
  await p3.getByRole('button', { name: 'Verify' }).click();
  await p3.waitForURL(/\/demo\/callback\/crm-web/);
  await p3.goto(`${dev.base}/account`);
  assert.match(await p3.locator('main').textContent(), /Recovery codes: 9 of 10 left; one was used on/);
  await p3.screenshot({ path: `${shots}/17-account-recovery-used.png`, fullPage: true });
  await third.close();
});

test('a product that requires two-step verification leads through setting it up', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Signed in to CRM with the password only.
  await page.goto(`${dev.base}/demo/login/crm-web`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/demo\/callback\/crm-web/);
  // Payments requires a second factor: no login form, the setup instead.
  await page.goto(`${dev.base}/`);
  await page.getByRole('link', { name: 'Sign in to Payments' }).click();
  await page.waitForURL(/\/login\/second-factor/);
  assert.match(await page.locator('main').textContent(), /asks for two-step verification/);
  await page.screenshot({ path: `${shots}/18-mfa-required-setup.png`, fullPage: true });
  const secret = (await page.locator('#secret').textContent()).trim();
  await page.fill('input[name=code]', totp(secret, step()));
  await page.getByRole('button', { name: 'Turn on' }).click();
  assert.equal((await page.locator('#recovery-codes code').allTextContents()).length, 10);
  await page.screenshot({ path: `${shots}/19-mfa-required-recovery-codes.png`, fullPage: true });
  await page.getByRole('link', { name: 'Done' }).click();
  await page.waitForURL(/\/demo\/callback\/payments-web/);
  const tokens = await page.locator('main').textContent();
  assert.match(tokens, /"amr": \[\s*"pwd",\s*"otp"\s*\]/);
  assert.match(tokens, /"roles": \[\s*"approver"\s*\]/);
  await page.screenshot({ path: `${shots}/20-mfa-required-tokens.png`, fullPage: true });
  await context.close();
});
