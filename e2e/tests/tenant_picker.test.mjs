// The tenant picker: a user with grants in two organizations of CRM signs in, picks one with the
// keyboard, gets that organization's token, then switches to the other with no login form.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium, shots, startDev } from './harness.mjs';

let dev;
let browser;
before(async () => { dev = await startDev(); browser = await launchChromium(); });
after(async () => { await browser?.close(); await dev?.stop(); });

/** The access token's claims as the demo shows them (header, then payload). */
async function accessClaims(page) {
  const text = await page.locator('pre').first().textContent();
  const payload = text.slice(text.indexOf('}\n{') + 2);
  return JSON.parse(payload);
}

test('pick an organization, then switch to the other without signing in again', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${dev.base}/demo/login/crm-web`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=email]', 'margaret@example.test');
  await page.fill('input[name=password]', 'apollo guidance computer');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();

  // Two organizations: the picker, with names and no database ids.
  await page.waitForURL(/\/select-tenant/);
  const choices = page.getByRole('list', { name: 'Organizations' }).getByRole('button');
  assert.deepEqual(await choices.allTextContents(), ['Acme Bank', 'Globex Savings']);
  for (const value of await choices.evaluateAll((bs) => bs.map((b) => b.value))) {
    assert.match(value, /^th_/, 'the picker names organizations by rotating handle');
  }
  assert.doesNotMatch(await page.content(), /ten_[A-Za-z0-9]/, 'no tenant id in the page');
  await page.screenshot({ path: `${shots}/6-tenant-picker.png`, fullPage: true });

  // Keyboard: focus the first choice, Tab to the second, Enter picks it.
  await choices.first().focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Globex Savings');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/demo\/callback\/crm-web/);
  await page.screenshot({ path: `${shots}/7-tenant-globex-tokens.png`, fullPage: true });
  const globex = await accessClaims(page);
  assert.equal(globex.org_name, 'Globex Savings');
  assert.deepEqual(globex.roles, ['viewer']);
  assert.match(globex.org_id, /^ten_/);

  // Switch: a new authorization; the SSO session means no login form, only the picker, which
  // now lists the organization used last first and focuses it.
  await page.getByRole('link', { name: 'Switch organization' }).click();
  await page.waitForURL(/\/select-tenant/);
  assert.equal(await page.locator('input[name=password]').count(), 0, 'no login form');
  assert.deepEqual(
    (await choices.allTextContents()).map((t) => t.trim()),
    ['Globex Savings (last used)', 'Acme Bank'],
  );
  assert.match(await page.evaluate(() => document.activeElement.textContent), /^Globex Savings/);
  await page.screenshot({ path: `${shots}/8-tenant-picker-last-used.png`, fullPage: true });
  await page.getByRole('button', { name: 'Acme Bank' }).click();
  await page.waitForURL(/\/demo\/callback\/crm-web/);
  await page.screenshot({ path: `${shots}/9-tenant-acme-tokens.png`, fullPage: true });
  const acme = await accessClaims(page);
  assert.equal(acme.org_name, 'Acme Bank');
  assert.deepEqual(acme.roles, ['editor']);
  assert.notEqual(acme.org_id, globex.org_id);
  assert.equal(acme.sub, globex.sub, 'the same identity in both organizations');
  await context.close();
});
