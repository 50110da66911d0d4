// codex-rotor dashboard: login, polling of the live feed, overview, filters, actions.
// Plain modern JS, no framework, no build step. Everything the page fetches is relative, so it
// works behind a reverse-proxy path prefix. State-changing calls carry the x-rotor-csrf header.
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const POLL_MS = 3000;
  const STATUSES = ['active', 'rate_limited', 'cooling_down', 'refreshing', 'expired', 'banned', 'disabled'];
  const FILTER_KEY = 'codex-rotor-status-filter';
  const $ = (id) => document.getElementById(id);
  const st = { data: null, skew: 0, timer: null, filter: localStorage.getItem(FILTER_KEY) || 'all', search: '' };
  Rotor.state = st;

  // ---- formatting ----
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  function dur(secs) {
    secs = Math.max(0, Math.round(secs));
    const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + String(m).padStart(2, '0') + 'm';
    if (m) return m + 'm ' + String(s).padStart(2, '0') + 's';
    return s + 's';
  }
  function num(n) {
    if (n == null) return '–';
    if (n >= 1e9) return (n / 1e9).toFixed(1) + 'B';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return String(n);
  }
  const statusLabel = (s) => String(s || '').replace(/_/g, ' ');
  const now = () => Date.now() + st.skew;
  Object.assign(Rotor, { esc, dur, num, statusLabel, now, STATUSES });

  // ---- HTTP ----
  async function api(method, path, body, raw) {
    const headers = { 'x-rotor-csrf': '1' };
    let payload;
    if (body !== undefined) {
      payload = raw ? body : JSON.stringify(body);
      headers['content-type'] = raw ? 'text/plain' : 'application/json';
    }
    const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
    let json = null;
    try { json = await resp.json(); } catch (_) { /* not JSON */ }
    if (resp.status === 401 && path !== 'login') { showLogin(); }
    if (!resp.ok) {
      const msg = (json && json.error && json.error.message) || resp.status + ' ' + resp.statusText;
      const err = new Error(msg); err.status = resp.status; throw err;
    }
    return json;
  }
  Rotor.api = api;
  Rotor.refresh = () => refresh();

  function toast(msg, bad, ms) {
    const t = $('toast');
    t.textContent = msg; t.className = 'toast' + (bad ? ' bad' : ''); t.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, ms || 4000);
  }

  // ---- login ----
  function showLogin() {
    clearInterval(st.timer); st.timer = null;
    $('app').hidden = true; $('login').hidden = false;
    $('login-key').focus();
  }
  async function onLogin(ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    try {
      await api('POST', 'login', { key: $('login-key').value });
      $('login-key').value = '';
      await start();
    } catch (e) {
      $('login-error').textContent = e.message;
    } finally { $('login-submit').disabled = false; }
  }

  // ---- polling ----
  async function refresh() {
    let data;
    try { data = await api('GET', 'admin/live'); } catch (e) {
      if (e.status !== 401) { $('updated').textContent = 'update failed: ' + e.message; }
      return false;
    }
    st.data = data;
    st.skew = data.now - Date.now();
    // Stable order for the table: by label (then id), whatever order the pool reports.
    st.sorted = data.accounts.slice().sort((a, b) =>
      String(a.label || a.id).localeCompare(String(b.label || b.id)) || a.id.localeCompare(b.id));
    render();
    return true;
  }
  async function start() {
    if (!(await refresh())) return;
    $('login').hidden = true; $('app').hidden = false;
    Rotor.table.layout();
    clearInterval(st.timer);
    st.timer = setInterval(refresh, POLL_MS);
  }

  // ---- rendering ----
  function render() {
    const d = st.data;
    const s = d.summary;
    const pill = $('serving');
    pill.textContent = s.serving ? 'Serving' : 'Not serving';
    pill.className = 'pill ' + (s.serving ? 'ok' : 'bad');
    $('serving-reason').textContent = d.reason;
    if (document.activeElement !== $('strategy')) $('strategy').value = d.strategy;
    $('updated').textContent = 'updated ' + new Date(d.now).toLocaleTimeString();
    const counts = countBy(d.accounts);
    $('ov-total').textContent = d.accounts.length;
    $('ov-breakdown').innerHTML = STATUSES.filter((k) => counts[k])
      .map((k) => '<span class="badge ' + k + '">' + counts[k] + ' ' + statusLabel(k) + '</span>').join('');
    const h = d.headroom;
    $('ov-usable').textContent = h.usable_accounts;
    $('ov-headroom').textContent = [
      h.primary_left_percent != null ? Math.round(h.primary_left_percent) + '% of 5h left' : null,
      h.weekly_left_percent != null ? Math.round(h.weekly_left_percent) + '% of week left' : null,
    ].filter(Boolean).join(' · ') || 'no quota data yet';
    $('ov-inflight').textContent = s.in_flight;
    const pts = d.series.points;
    const last = pts.slice(-10).reduce((a, p) => a + p[1], 0);
    $('ov-rate').textContent = last + ' requests in the last ' + Math.round((10 * d.series.slot_ms) / 60000) + ' min';
    renderFilters(counts, d.accounts.length);
    applyFilter();
    Rotor.chart.draw($('chart'), d.series, $('chart-legend'));
    renderRequests(d.requests);
    tick();
  }
  function countBy(rows) {
    const c = {};
    for (const r of rows) c[r.ds] = (c[r.ds] || 0) + 1;
    return c;
  }
  function renderFilters(counts, total) {
    const keys = ['all'].concat(STATUSES);
    $('filters').innerHTML = keys.map((k) => {
      const n = k === 'all' ? total : counts[k] || 0;
      return '<button data-filter="' + k + '" class="' + (st.filter === k ? 'on' : '') + '" role="tab">' +
        esc(k === 'all' ? 'all' : statusLabel(k)) + '<span class="count">' + n + '</span></button>';
    }).join('');
  }
  function applyFilter() {
    const q = st.search.trim().toLowerCase();
    const rows = st.sorted.filter((r) =>
      (st.filter === 'all' || r.ds === st.filter) &&
      (!q || [r.id, r.label, r.plan, r.ds].some((v) => v && String(v).toLowerCase().includes(q))));
    Rotor.table.setRows(rows, st.data.accounts.length);
  }
  function renderRequests(list) {
    $('requests').innerHTML = list.length ? list.map((r) => {
      const tok = r.usage ? num(r.usage.input_tokens + r.usage.output_tokens) : '–';
      return '<tr><td>' + dur((now() - r.at) / 1000) + ' ago</td><td>' + esc(r.client_key || '–') + '</td><td>' + esc(r.route) +
        '</td><td>' + esc(r.model || '–') + '</td><td>' + esc(r.account_id || '–') + '</td><td class="s' + String(r.status)[0] + '">' + r.status +
        (r.error ? ' <span class="muted">' + esc(r.error) + '</span>' : '') + '</td><td class="num">' + (r.ttfb_ms != null ? r.ttfb_ms + ' ms' : '–') +
        '</td><td class="num">' + r.duration_ms + ' ms</td><td class="num">' + tok + '</td><td class="num">' + r.failovers + '</td></tr>';
    }).join('') : '<tr><td colspan="10" class="muted">No requests yet.</td></tr>';
  }

  // Once a second: countdowns of the visible rows and of the soonest reset.
  function tick() {
    if (!st.data) return;
    const t = now();
    const soon = st.data.summary.soonest_reset_at;
    $('ov-reset').textContent = soon ? dur((soon - t) / 1000) : '–';
    $('ov-reset-sub').textContent = soon ? 'at ' + new Date(soon).toLocaleTimeString() : 'no account is exhausted';
    Rotor.table.tick(t);
  }

  // ---- actions ----
  async function onAction(btn) {
    const id = btn.closest('[data-id]').dataset.id;
    const action = btn.dataset.action;
    if (action === 'remove' && !btn.classList.contains('confirm')) {
      btn.classList.add('confirm'); btn.textContent = 'Confirm?';
      setTimeout(() => { btn.classList.remove('confirm'); btn.textContent = 'Remove'; }, 3000);
      return;
    }
    if (action === 'explain') return explain(id);
    btn.disabled = true;
    try {
      if (action === 'remove') await api('DELETE', 'admin/accounts/' + encodeURIComponent(id));
      else await api('POST', 'admin/accounts/' + encodeURIComponent(id) + '/' + action);
      toast({ probe: 'Probing quota of ', enable: 'Enabled ', disable: 'Disabled ', remove: 'Removed ' }[action] + id);
      await refresh();
    } catch (e) { toast(e.message, true); } finally { btn.disabled = false; }
  }
  // Why an account is (not) available, and until when, from the account actor itself.
  async function explain(id) {
    try {
      const e = await api('GET', 'admin/accounts/' + encodeURIComponent(id) + '/explain');
      const until = e.until ? ' — until ' + new Date(e.until).toLocaleTimeString() + ' (in ' + dur((e.until - now()) / 1000) + ')' : '';
      toast(id + ': ' + (e.available ? 'available' : e.reasons.join('; ') + until), false, 9000);
    } catch (err) { toast(err.message, true); }
  }
  async function onImport(ev) {
    ev.preventDefault();
    const text = $('add-text').value;
    $('add-result').textContent = 'Importing…';
    try {
      const r = await api('POST', 'admin/accounts/import', text, true);
      $('add-result').textContent = 'Imported ' + r.imported + ' account(s).';
      $('add-text').value = '';
      await refresh();
    } catch (e) { $('add-result').textContent = e.message; }
  }

  function wire() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', async () => { try { await api('POST', 'logout'); } catch (_) { /* gone anyway */ } showLogin(); });
    $('strategy').addEventListener('change', async (ev) => {
      try { await api('PUT', 'admin/strategy', { strategy: ev.target.value }); toast('Rotation: ' + statusLabel(ev.target.value)); } catch (e) { toast(e.message, true); }
    });
    $('filters').addEventListener('click', (ev) => {
      const b = ev.target.closest('[data-filter]');
      if (!b) return;
      st.filter = b.dataset.filter; localStorage.setItem(FILTER_KEY, st.filter);
      render();
    });
    $('search').addEventListener('input', (ev) => { st.search = ev.target.value; applyFilter(); });
    $('accounts').addEventListener('click', (ev) => { const b = ev.target.closest('[data-action]'); if (b) onAction(b); });
    $('add-open').addEventListener('click', () => { $('add-result').textContent = ''; $('add-dialog').showModal(); });
    $('add-submit').addEventListener('click', onImport);
    setInterval(tick, 1000);
    window.addEventListener('resize', () => { Rotor.table.layout(); if (st.data) Rotor.chart.draw($('chart'), st.data.series, $('chart-legend')); });
  }

  document.addEventListener('DOMContentLoaded', () => {
    Rotor.table.init($('accounts'), $('accounts-spacer'), $('accounts-foot'));
    wire();
    start().then(() => { if (!st.data) showLogin(); });
  });
})();
