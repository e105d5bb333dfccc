// The account page: sessions on two devices, this one marked, and "sign out everywhere".
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

async function signIn(context, product) {
  const page = await context.newPage();
  await page.goto(`${dev.base}/demo/login/${product}`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(new RegExp(`/demo/callback/${product}`));
  return page;
}

test('two devices on the account page, then sign out everywhere', async () => {
  const laptop = await browser.newContext({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36' });
  const phone = await browser.newContext({ userAgent: 'Mozilla/5.0 (Linux; Android 15) AppleWebKit/537.36 Chrome/156.0 Mobile Safari/537.36' });
  const onLaptop = await signIn(laptop, 'crm-web');
  await onLaptop.goto(`${dev.base}/demo/login/reports-web`);
  await onLaptop.waitForURL(/\/demo\/callback\/reports-web/);
  const onPhone = await signIn(phone, 'crm-web');

  await onLaptop.goto(`${dev.base}/account`);
  const rows = onLaptop.getByRole('table', { name: 'Sessions' }).locator('tr').filter({ has: onLaptop.locator('form') });
  assert.equal(await rows.count(), 2, 'one session per device');
  const mine = rows.filter({ hasText: 'This device' });
  assert.equal(await mine.count(), 1);
  assert.match(await mine.textContent(), /Chrome on Linux/);
  assert.match(await mine.textContent(), /CRM, Reports/);
  assert.match(await rows.filter({ hasNotText: 'This device' }).textContent(), /Chrome on Android/);
  await onLaptop.screenshot({ path: `${shots}/10-account-sessions.png`, fullPage: true });

  await onLaptop.getByRole('button', { name: 'Sign out everywhere' }).click();
  await onLaptop.waitForLoadState();
  assert.equal(await onLaptop.locator('h1').textContent(), 'You have signed out');
  await onLaptop.screenshot({ path: `${shots}/11-signed-out.png`, fullPage: true });

  // The phone is signed out too: its account page asks for a login.
  await onPhone.goto(`${dev.base}/account`);
  await onPhone.waitForURL(/\/login\?next=\/account/);
  assert.equal(await onPhone.locator('input[name=password]').count(), 1);
  await laptop.close();
  await phone.close();
});
