// Passkeys on Portico's pages. A button with data-passkey="create" or "get" names the URL that
// starts the ceremony (data-options) and the form that finishes it (data-form). The options come
// from the server as WebAuthn's JSON forms; the browser's answer goes back, as JSON, in the form's
// `credential` field, with the ceremony's `token`. Nothing here decides anything: the server checks it all.
(() => {
  'use strict';
  const fromB64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=')), (c) => c.charCodeAt(0)).buffer;
  const toB64 = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

  // Browsers before WebAuthn Level 3's JSON helpers: decode the binary fields by hand.
  function creationOptions(o) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    return { ...o, challenge: fromB64(o.challenge), user: { ...o.user, id: fromB64(o.user.id) },
      excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: fromB64(c.id) })) };
  }
  function requestOptions(o) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    return { ...o, challenge: fromB64(o.challenge), allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: fromB64(c.id) })) };
  }
  function asJSON(cred) {
    if (cred.toJSON) return cred.toJSON();
    const r = cred.response;
    const response = { clientDataJSON: toB64(r.clientDataJSON) };
    if (r.attestationObject) response.attestationObject = toB64(r.attestationObject);
    if (r.authenticatorData) response.authenticatorData = toB64(r.authenticatorData);
    if (r.signature) response.signature = toB64(r.signature);
    if (r.userHandle) response.userHandle = toB64(r.userHandle);
    return { id: cred.id, rawId: toB64(cred.rawId), type: cred.type, response, clientExtensionResults: cred.getClientExtensionResults() };
  }

  function say(form, text) {
    let p = form.querySelector('.passkey-status');
    if (!p) {
      p = document.createElement('p');
      p.className = 'passkey-status error';
      p.setAttribute('role', 'alert');
      form.prepend(p);
    }
    p.textContent = text;
  }

  async function run(button) {
    const form = document.getElementById(button.dataset.form);
    if (!window.PublicKeyCredential) { say(form, 'This browser cannot use passkeys.'); return; }
    button.disabled = true;
    try {
      const body = new URLSearchParams({ csrf: form.elements.csrf.value });
      const res = await fetch(button.dataset.options, { method: 'POST', body, credentials: 'same-origin' });
      if (!res.ok) { say(form, (await res.json().catch(() => ({}))).detail || 'Passkeys are unavailable right now.'); return; }
      const { token, publicKey } = await res.json();
      const cred = button.dataset.passkey === 'create'
        ? await navigator.credentials.create({ publicKey: creationOptions(publicKey) })
        : await navigator.credentials.get({ publicKey: requestOptions(publicKey) });
      form.elements.token.value = token;
      form.elements.credential.value = JSON.stringify(asJSON(cred));
      form.submit();
    } catch (e) {
      say(form, e && e.name === 'NotAllowedError' ? 'The passkey request was cancelled or timed out.' : 'The passkey could not be used: ' + e.message);
    } finally {
      button.disabled = false;
    }
  }

  for (const b of document.querySelectorAll('button[data-passkey]')) {
    b.hidden = false;
    b.addEventListener('click', () => run(b));
  }
})();
