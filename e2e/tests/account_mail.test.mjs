// Sign-up, password reset and password change in Chromium, with the mail read from `portico dev`'s
// own SMTP sink at /dev/mail and the strength meter watched as the password is typed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

const meter = (page) => page.locator('#strength span');

/** Opens the newest mail's link to `path` from the dev mail page, reloading it until the mail is
 * there (mail goes out after the page that asked for it has answered). */
async function followMailedLink(page, path, shot) {
  const link = page.locator(`article a[href*="${path}?token="]`).first();
  const deadline = Date.now() + 15000;
  await page.goto(`${dev.base}/dev/mail`);
  while ((await link.count()) === 0) {
    if (Date.now() > deadline) throw new Error(`no mail with a ${path} link arrived`);
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
  }
  if (shot) await page.screenshot({ path: `${shots}/${shot}`, fullPage: true });
  await link.click();
}

test('a newcomer signs up for Reports, confirms the email and gets in', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/demo/login/reports-web`);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.fill('#name', 'Lin Chen');
  await page.fill('#email', 'lin@example.test');
  await page.locator('#new-password').pressSequentially('password1');
  await meter(page).filter({ hasText: 'Use at least 15 characters.' }).waitFor();
  await page.locator('#new-password').fill('');
  await page.locator('#new-password').pressSequentially('passwordpassword');
  await meter(page).filter({ hasText: /common|easy to guess/ }).waitFor();
  await page.screenshot({ path: `${shots}/29-signup-weak-password.png`, fullPage: true });
  await page.locator('#new-password').fill('');
  await page.locator('#new-password').pressSequentially('lighthouse keeper oyster violin');
  await meter(page).filter({ hasText: /(Good|Strong) password\./ }).waitFor();
  assert.ok(await page.locator('#strength meter').evaluate((m) => m.value) >= 3, 'the meter shows at least "good"');
  await page.screenshot({ path: `${shots}/30-signup-strong-password.png`, fullPage: true });
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('h1', { hasText: 'Check your email' }).waitFor();
  await page.screenshot({ path: `${shots}/31-signup-check-mail.png`, fullPage: true });

  await followMailedLink(page, '/signup/confirm', '32-dev-mail.png');
  await page.locator('h1', { hasText: 'Confirm your email' }).waitFor();
  await page.fill('#password', 'lighthouse keeper oyster violin');
  await page.screenshot({ path: `${shots}/33-signup-confirm.png`, fullPage: true });
  await page.getByRole('button', { name: 'Create my account' }).click();
  await page.locator('h1', { hasText: 'Your account is ready' }).waitFor();
  await page.screenshot({ path: `${shots}/34-signup-done.png`, fullPage: true });
  await page.getByRole('link', { name: 'Continue to sign in' }).click();
  await page.fill('input[name=email]', 'lin@example.test');
  await page.fill('input[name=password]', 'lighthouse keeper oyster violin');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/demo\/callback\/reports-web/);
  const shown = await page.textContent('body');
  assert.match(shown, /lin@example\.test/);
  assert.match(shown, /"email_verified": true/);
  await context.close();
});

test('a forgotten password is reset by mail, and the old one stops working', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/demo/login/crm-web`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.fill('#email', 'grace@example.test');
  await page.screenshot({ path: `${shots}/35-forgot-password.png`, fullPage: true });
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await page.locator('h1', { hasText: 'Check your email' }).waitFor();
  await followMailedLink(page, '/password/reset');
  await page.locator('h1', { hasText: 'Choose a new password' }).waitFor();
  await page.locator('#new-password').pressSequentially('grace hopper grace hopper');
  await meter(page).filter({ hasText: /easy to guess/ }).waitFor();
  await page.locator('#new-password').fill('');
  await page.locator('#new-password').pressSequentially('nanoseconds of wire on my desk');
  await meter(page).filter({ hasText: /(Good|Strong) password\./ }).waitFor();
  await page.screenshot({ path: `${shots}/36-reset-password.png`, fullPage: true });
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.locator('h1', { hasText: 'Your password is changed' }).waitFor();
  await page.screenshot({ path: `${shots}/37-reset-done.png`, fullPage: true });

  await page.goto(`${dev.base}/demo/login/crm-web`);
  await page.fill('input[name=email]', 'grace@example.test');
  await page.fill('input[name=password]', 'debugging the harvard mark ii');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('.error', { hasText: 'Wrong email or password.' }).waitFor();
  await page.fill('input[name=password]', 'nanoseconds of wire on my desk');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/demo\/callback\/crm-web/);
  await context.close();
});

test('changing the password on the account page signs the other device out', async () => {
  const laptop = await browser.newContext();
  const phone = await browser.newContext();
  for (const context of [laptop, phone]) {
    const page = await context.newPage();
    await page.goto(`${dev.base}/demo/login/crm-web`);
    await page.fill('input[name=email]', 'margaret@example.test');
    await page.fill('input[name=password]', 'apollo guidance computer');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(/select-tenant|demo\/callback/);
  }
  const page = await laptop.newPage();
  await page.goto(`${dev.base}/account`);
  await page.getByRole('link', { name: 'Change your password' }).click();
  await page.fill('#current-password', 'apollo guidance computer');
  await page.locator('#new-password').pressSequentially('lunar module descent engine');
  await meter(page).filter({ hasText: /(Good|Strong) password\./ }).waitFor();
  await page.screenshot({ path: `${shots}/38-change-password.png`, fullPage: true });
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator('.notice', { hasText: 'Your password is changed' }).waitFor();
  await page.screenshot({ path: `${shots}/39-password-changed.png`, fullPage: true });

  const onPhone = await phone.newPage();
  await onPhone.goto(`${dev.base}/account`);
  await onPhone.waitForURL(/\/login\?next=\/account/);
  await laptop.close();
  await phone.close();
});
