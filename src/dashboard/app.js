// codex-rotor dashboard: login, polling of the live feed, overview, filters, sorting, actions.
// Plain modern JS, no framework, no build step. Everything the page fetches is relative, so it
// works behind a reverse-proxy path prefix. State-changing calls carry the x-rotor-csrf header.
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const POLL_MS = 3000;
  const STATUSES = ['active', 'rate_limited', 'cooling_down', 'refreshing', 'expired', 'banned', 'disabled'];
  const FILTER_KEY = 'codex-rotor-status-filter';
  const SORT_KEY = 'codex-rotor-sort';
  const $ = (id) => document.getElementById(id);
  const st = { data: null, skew: 0, timer: null, filter: localStorage.getItem(FILTER_KEY) || 'all', search: '', sort: savedSort(), servingNow: false };
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
  const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  // A point in time as an operator reads it: "14:05" today, "Mon 8 Dec 14:05" any other day
  // (a weekly reset shown as "14:05" reads as today).
  function when(ms) {
    const d = new Date(ms), today = new Date(now());
    const hm = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
    if (d.toDateString() === today.toDateString()) return hm;
    return DAYS[d.getDay()] + ' ' + d.getDate() + ' ' + MONTHS[d.getMonth()] + ' ' + hm;
  }
  Object.assign(Rotor, { esc, dur, num, statusLabel, now, when, STATUSES });
  function savedSort() {
    try {
      const s = JSON.parse(localStorage.getItem(SORT_KEY));
      if (s && Rotor.sort.has(s.key) && (s.dir === 'asc' || s.dir === 'desc')) return s;
    } catch (_) { /* none saved */ }
    return Rotor.sort.DEFAULT;
  }

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
    $('ov-usable').textContent = d.headroom.usable_accounts;
    $('ov-headroom').textContent = headroomText(d.headroom);
    $('ov-inflight').textContent = s.in_flight;
    const pts = d.series.points;
    const last = pts.slice(-10).reduce((a, p) => a + p[1], 0);
    $('ov-rate').textContent = last + ' requests in the last ' + Math.round((10 * d.series.slot_ms) / 60000) + ' min';
    renderFilters(counts, d.accounts.length);
    $('serving-now-count').textContent = d.accounts.filter((r) => r.l > 0).length;
    applyFilter();
    Rotor.chart.draw($('chart'), d.series, $('chart-legend'));
    renderRequests(d.requests, new Map(d.accounts.map((r) => [r.id, r.label || r.id])));
    renderQuarantine(d.quarantined || []);
    Rotor.nodes.render(d.cluster);
    tick();
  }
  // "63% of 5h left · 180 of 200 accounts reporting · 70% of week left": averages over the
  // accounts in service that reported the window, and how many did.
  function headroomText(h) {
    const reporting = (n) => n + ' of ' + h.in_service + ' accounts reporting';
    if (h.primary_left_percent == null) return h.in_service ? 'no quota data yet · ' + reporting(0) : 'no account in service';
    const parts = [Math.round(h.primary_left_percent) + '% of 5h left', reporting(h.primary_reporting)];
    if (h.weekly_left_percent != null) {
      parts.push(Math.round(h.weekly_left_percent) + '% of week left' + (h.weekly_reporting !== h.primary_reporting ? ' (' + h.weekly_reporting + ' reporting)' : ''));
    }
    return parts.join(' · ');
  }
  function renderQuarantine(list) {
    $('quarantine').hidden = !list.length;
    $('quarantine-list').innerHTML = list.map((q) => '<li><code>' + esc(q.file || q.path) + '</code> — ' + esc(q.reason) +
      '<div class="muted small">' + (q.moved_to ? 'moved to ' + esc(q.moved_to) : 'could not be moved aside: still at ' + esc(q.path)) + '</div></li>').join('');
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
    const rows = st.data.accounts.filter((r) =>
      (st.filter === 'all' || r.ds === st.filter) &&
      (!q || [r.id, r.label, r.plan || 'plan unknown', r.ds].some((v) => v && String(v).toLowerCase().includes(q))));
    Rotor.table.setRows(Rotor.sort.rows(rows, st.sort, st.servingNow), st.data.accounts.length);
    for (const b of $('accounts-head').querySelectorAll('[data-sort]')) {
      const on = b.dataset.sort === st.sort.key;
      b.classList.toggle('sorted', on);
      b.classList.toggle('desc', on && st.sort.dir === 'desc');
      b.setAttribute('aria-sort', on ? (st.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none');
    }
    $('serving-now').setAttribute('aria-pressed', String(st.servingNow));
    $('serving-now').classList.toggle('on', st.servingNow);
  }
  function onSort(key) {
    st.sort = Rotor.sort.next(st.sort, key);
    localStorage.setItem(SORT_KEY, JSON.stringify(st.sort));
    $('accounts').scrollTop = 0;
    applyFilter();
  }
  // Accounts by label (the id in the tooltip); an account removed since keeps its id.
  function renderRequests(list, names) {
    $('requests').innerHTML = list.length ? list.map((r) => {
      const tok = r.usage ? num(r.usage.input_tokens + r.usage.output_tokens) : '–';
      return '<tr><td>' + dur((now() - r.at) / 1000) + ' ago</td><td>' + esc(r.client_key || '–') + '</td><td>' + esc(r.route) +
        '</td><td>' + esc(r.model || '–') + '</td><td class="acct-cell" title="' + esc(r.account_id || '') + '">' + esc(names.get(r.account_id) || r.account_id || '–') + '</td><td class="s' + String(r.status)[0] + '">' + r.status +
        (r.error ? ' <span class="muted err">' + esc(r.error) + '</span>' : '') + '</td><td class="num">' + (r.ttfb_ms != null ? r.ttfb_ms + ' ms' : '–') +
        '</td><td class="num">' + r.duration_ms + ' ms</td><td class="num">' + tok + '</td><td class="num">' + r.failovers + '</td></tr>';
    }).join('') : '<tr><td colspan="10" class="muted">No requests yet.</td></tr>';
  }

  // Once a second: countdowns of the visible rows and of the soonest reset.
  function tick() {
    if (!st.data) return;
    const t = now();
    const soon = st.data.summary.soonest_reset_at;
    $('ov-reset').textContent = soon ? dur((soon - t) / 1000) : '–';
    $('ov-reset-sub').textContent = soon ? 'at ' + when(soon) : 'no account is exhausted';
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
    if (action === 'details') return Rotor.details.open(id);
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
      const until = e.until ? ' — until ' + when(e.until) + ' (in ' + dur((e.until - now()) / 1000) + ')' : '';
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
    $('accounts-head').addEventListener('click', (ev) => { const b = ev.target.closest('[data-sort]'); if (b) onSort(b.dataset.sort); });
    $('serving-now').addEventListener('click', () => { st.servingNow = !st.servingNow; $('accounts').scrollTop = 0; applyFilter(); });
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
