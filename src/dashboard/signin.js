// codex-rotor dashboard: "Sign in with ChatGPT" — adds an account by the OAuth PKCE login.
// The button asks the daemon to start a login (POST admin/accounts/login), opens the authorize
// URL in a new tab and shows a dialog. When the browser comes back to the daemon's
// /auth/callback the login completes there by itself (the dialog notices the new account);
// when the sign-in ends on a page that does not load (Codex's registered redirect is
// http://localhost:1455/auth/callback), the operator pastes that page's address into the
// dialog, which completes the login (POST admin/accounts/login/complete).
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const $ = (id) => document.getElementById(id);
  let watch = null;

  function accountIds() {
    return new Set(Rotor.state && Rotor.state.data ? Rotor.state.data.accounts.map((a) => a.id) : []);
  }
  function stopWatching() { clearInterval(watch); watch = null; }
  // A dialog's `close` event is queued, not immediate: one from a dialog closed just before the
  // button was pressed again can arrive after the new watch started. Only a dialog that is
  // really closed stops the watch.
  function onClose() { if (!$('signin-dialog').open) stopWatching(); }

  // Starts a login and opens the sign-in page; the dialog waits for the account to appear.
  async function onStart() {
    $('signin-result').textContent = 'Starting…';
    $('signin-url').value = '';
    $('signin-link').hidden = true;
    $('signin-dialog').showModal();
    let started;
    try { started = await Rotor.api('POST', 'admin/accounts/login'); } catch (e) {
      $('signin-result').textContent = e.message; return;
    }
    $('signin-link').href = started.authorize_url;
    $('signin-link').hidden = false;
    window.open(started.authorize_url, '_blank', 'noopener');
    $('signin-result').textContent = 'Sign in in the new tab.';
    const before = accountIds();
    stopWatching();
    watch = setInterval(async () => {
      if (!$('signin-dialog').open) return stopWatching();
      await Rotor.refresh();
      if ([...accountIds()].some((id) => !before.has(id))) {
        stopWatching();
        $('signin-result').textContent = 'Account added.';
      }
    }, 1500);
  }

  // Completes a login from the address the sign-in tab ended on.
  async function onComplete(ev) {
    ev.preventDefault();
    const url = $('signin-url').value.trim();
    if (!url) { $('signin-result').textContent = 'Paste the address the sign-in tab ended on.'; return; }
    $('signin-result').textContent = 'Completing…';
    try {
      const r = await Rotor.api('POST', 'admin/accounts/login/complete', { callback_url: url });
      stopWatching();
      $('signin-url').value = '';
      $('signin-result').textContent = 'Account added' + (r.email ? ': ' + r.email : '') + '.';
      await Rotor.refresh();
    } catch (e) { $('signin-result').textContent = e.message; }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-open').addEventListener('click', onStart);
    $('signin-submit').addEventListener('click', onComplete);
    $('signin-dialog').addEventListener('close', onClose);
  });
})();
