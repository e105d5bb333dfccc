// Starts the real `portico` binary and Debian's Chromium for browser tests.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const shots = new URL('../screenshots/', import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

/** The `portico` binary that scripts/test built (E2E_PORTICO_BIN, or the Cargo target dir's debug build). */
export function porticoBin() {
  if (process.env.E2E_PORTICO_BIN) return process.env.E2E_PORTICO_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/portico/target');
  return join(target, 'debug/portico');
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** `portico dev` on a free loopback port; resolves once it answers, with its printed banner. `host`
 * names the issuer's host: `localhost` for passkeys (browsers refuse an IP address as WebAuthn's
 * relying party). */
export async function startDev({ host = '127.0.0.1' } = {}) {
  const port = await freePort();
  const base = `http://${host}:${port}`;
  const proc = spawn(porticoBin(), ['dev', '--listen', `127.0.0.1:${port}`, '--issuer', base], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`portico dev exited: ${out}`);
    try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break; } catch { /* not yet listening */ }
    if (Date.now() > deadline) { proc.kill(); throw new Error(`portico dev did not answer: ${out}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base, output: () => out, stop: () => new Promise((r) => { proc.once('exit', r); proc.kill('SIGTERM'); }) };
}

/** Debian's Chromium; Playwright gives every launch a fresh, empty user-data dir of its own. `extra`
 * adds flags (host names for loopback, say). */
export async function launchChromium(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extra],
  });
}

/** Chromium for tests across sites: every `*.example.test` and `*.acme.test` name is loopback,
 * and the certificate made at test time is taken. `extra` adds flags. */
export function launchAcrossSites(extra = []) {
  return launchChromium(['--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.acme.test 127.0.0.1', '--ignore-certificate-errors', ...extra]);
}

/** An HTTPS server on loopback `port` with the test certificate, answering with `handler`. */
export async function listenHttps(tls, port, handler) {
  const server = createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler);
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

/** A throwaway certificate and key (PEM files) for `*.example.test` and `*.acme.test`, made now. */
export function testCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'portico-e2e-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=portico e2e', '-addext', 'subjectAltName=DNS:*.example.test,DNS:*.acme.test',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { dir, cert, key };
}

/** `portico serve` over HTTPS at `https://<host>:<port>` with `suite` applied to a fresh data dir. */
export async function startServe({ host, suite, tls }) {
  const port = await freePort();
  const base = `https://${host}:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'portico-e2e-data-'));
  const suiteFile = join(dataDir, 'suite.toml');
  writeFileSync(suiteFile, suite(port));
  const common = ['--issuer', base, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir];
  execFileSync(porticoBin(), ['apply', '--file', suiteFile, ...common], { stdio: 'pipe' });
  const proc = spawn(porticoBin(), ['serve', ...common, '--tls-cert', tls.cert, '--tls-key', tls.key], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`portico serve exited: ${out}`);
    // Listening is enough: the TLS name is checked by the browser, not here.
    const answered = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (answered) break;
    if (Date.now() > deadline) { proc.kill(); throw new Error(`portico serve did not answer: ${out}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base, port, output: () => out, stop: () => new Promise((r) => { proc.once('exit', r); proc.kill('SIGTERM'); }) };
}
