// A newcomer's first minutes: `portico dev`, the demo page, the hosted login, tokens for CRM, then
// Reports with no second login (the SSO session carries over).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

test('sign in through the hosted login page of portico dev and reach a demo product', async () => {
  assert.match(dev.output(), /ada@example\.test/, 'portico dev prints its demo users');
  const page = await browser.newPage();
  await page.goto(`${dev.base}/`);
  await page.screenshot({ path: `${shots}/1-demo-home.png`, fullPage: true });

  await page.getByRole('link', { name: 'Sign in to CRM' }).click();
  await page.waitForURL(/\/login/);
  assert.equal(await page.getAttribute('input[name=email]', 'autocomplete'), 'username');
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'correct horse battery staple');
  await page.screenshot({ path: `${shots}/2-login.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();

  await page.waitForURL(/\/demo\/callback\/crm-web/);
  await page.screenshot({ path: `${shots}/3-crm-tokens.png`, fullPage: true });
  assert.equal(await page.locator('h1').textContent(), 'Signed in to CRM');
  const access = await page.locator('pre').first().textContent();
  assert.match(access, /"typ": "at\+jwt"/);
  assert.match(access, /"aud": "https:\/\/crm\.example\.test"/);
  assert.match(access, /"org_name": "Acme Bank"/);
  assert.match(access, /"roles": \[\s*"editor"\s*\]/);

  // The second product: no login form, straight to its tokens.
  await page.goto(`${dev.base}/`);
  await page.getByRole('link', { name: 'Sign in to Reports' }).click();
  await page.waitForURL(/\/demo\/callback\/reports-web/);
  await page.screenshot({ path: `${shots}/4-reports-tokens.png`, fullPage: true });
  assert.equal(await page.locator('h1').textContent(), 'Signed in to Reports');
  const reports = await page.locator('pre').first().textContent();
  assert.doesNotMatch(reports, /crm\.example\.test/, 'the Reports token names only Reports');
});

test('a wrong password keeps the user on the login page with an error and no session', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/demo/login/crm-web`);
  await page.fill('input[name=email]', 'ada@example.test');
  await page.fill('input[name=password]', 'wrong password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
  assert.match(page.url(), /\/login/);
  assert.match(await page.locator('.error').textContent(), /email or password/i);
  await page.screenshot({ path: `${shots}/5-login-error.png`, fullPage: true });
  const cookies = await context.cookies();
  assert.ok(!cookies.some((c) => c.name.endsWith('portico_session')), 'no session cookie after a failed login');
  await context.close();
});

// What a URL brings is shown as text: a crafted link to the demo's callback, to a mailed link's
// landing page or to the mail page runs no script of its author's.
test('values from the URL reach the demo and link pages escaped', async () => {
  const raw = '<script>window.__pwned=1</script>"\'&';
  const context = await browser.newContext();
  const page = await context.newPage();
  const q = encodeURIComponent(raw);
  for (const path of [
    `/demo/callback/crm-web?error=${q}&error_description=${q}`,
    `/password/reset?token=${q}`,
    `/signup/confirm?token=${q}`,
    `/account/verify-email?token=${q}`,
    `/account/factor-link?token=${q}`,
    `/dev/mail?x=${q}`,
  ]) {
    const resp = await page.goto(`${dev.base}${path}`);
    const html = await resp.text();
    assert.ok(!html.includes('<script>window.__pwned'), `${path} shows the script raw: ${html}`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, `${path} ran the script`);
  }
  await page.goto(`${dev.base}/demo/callback/crm-web?error=${q}&error_description=${q}`);
  assert.match(await page.locator('body').textContent(), /<script>window\.__pwned=1<\/script>"'&/, 'the error is shown as text');
  await page.screenshot({ path: `${shots}/6-callback-escaped.png`, fullPage: true });
  await context.close();
});
