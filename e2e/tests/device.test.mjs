// The device flow (RFC 8628) in Chromium: a command-line tool asks for a code, the user types it
// at /device, signs in, picks the tenant, sees which application asks for which product and
// tenant, and approves; the tool's poll then gets its tokens.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

async function post(path, form) {
  const res = await fetch(`${dev.base}${path}`, { method: 'POST', body: new URLSearchParams(form) });
  return { status: res.status, body: await res.json() };
}

test('a command-line tool signs in with a code its user approves in the browser', async () => {
  const { status, body: device } = await post('/oauth2/device_authorization', { client_id: 'crm-cli', scope: 'openid offline_access' });
  assert.equal(status, 200);
  assert.match(device.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  const pending = await post('/oauth2/token', { grant_type: GRANT, client_id: 'crm-cli', device_code: device.device_code });
  assert.equal(pending.body.error, 'authorization_pending');

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/device`);
  await page.screenshot({ path: `${shots}/30-device-code.png`, fullPage: true });
  // Typed as a person types it: lower case, no dash.
  await page.fill('input[name=user_code]', device.user_code.replace('-', '').toLowerCase());
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.fill('input[name=email]', 'margaret@example.test');
  await page.fill('input[name=password]', 'apollo guidance computer');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  // Margaret works in two tenants: she picks one, then sees who asks for what, and the code.
  await page.waitForURL(/\/select-tenant/);
  await page.getByRole('button', { name: /Acme Bank/ }).click();
  await page.waitForURL(/\/consent/);
  const main = await page.locator('main').textContent();
  assert.match(main, /CRM command line/);
  assert.match(main, /Acme Bank/);
  assert.ok(main.includes(device.user_code), main);
  assert.match(main, /signed in as margaret@example\.test/);
  await page.screenshot({ path: `${shots}/31-device-consent.png`, fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(/\/device\/done\?approved=1/);
  assert.match(await page.locator('main').textContent(), /Your device is signed in/);
  await page.screenshot({ path: `${shots}/32-device-done.png`, fullPage: true });
  await context.close();

  // The tool polls no faster than the interval, and gets tokens for CRM in Acme Bank.
  await new Promise((r) => setTimeout(r, device.interval * 1000));
  const done = await post('/oauth2/token', { grant_type: GRANT, client_id: 'crm-cli', device_code: device.device_code });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  const claims = JSON.parse(Buffer.from(done.body.access_token.split('.')[1], 'base64url'));
  assert.equal(claims.client_id, 'crm-cli');
  assert.equal(claims.org_name, 'Acme Bank');
  assert.ok(done.body.refresh_token);
});
