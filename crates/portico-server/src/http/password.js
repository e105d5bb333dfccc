// Portico's password meter. As the user types a new password, asks /password/strength (the
// server's own policy: length, the common and breached password list, guessability) and shows
// its reading, so the page says what the server will decide.
(() => {
  'use strict';
  for (const input of document.querySelectorAll('input[data-strength]')) {
    const out = document.getElementById(input.dataset.strength);
    const meter = out.querySelector('meter');
    const text = out.querySelector('span');
    const field = (id) => (document.getElementById(id) || {}).value || '';
    let timer;
    let asked = 0;
    const ask = async () => {
      const mine = ++asked;
      const body = new URLSearchParams({
        password: input.value,
        email: input.dataset.email || field('email'),
        name: input.dataset.name || field('name'),
      });
      let reading;
      try {
        const r = await fetch('/password/strength', { method: 'POST', body, credentials: 'same-origin' });
        if (!r.ok) return;
        reading = await r.json();
      } catch {
        return;
      }
      if (mine !== asked) return;
      meter.value = reading.score;
      text.textContent = reading.message;
      out.dataset.acceptable = String(reading.acceptable);
      input.setCustomValidity(reading.acceptable || input.value === '' ? '' : reading.message);
    };
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(ask, 150);
    });
  }
})();
