// The details view of one account, opened from its label: what a row has no room for — the
// whole status reason and last error (a ban reason is a sentence, the row shows one line),
// every quota bucket with the date it resets, the counters, and why the account is (not)
// available now, asked of the account itself.
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const $ = (id) => document.getElementById(id);

  function item(term, value, cls) {
    if (value == null || value === '') return '';
    return '<dt>' + Rotor.esc(term) + '</dt><dd' + (cls ? ' class="' + cls + '"' : '') + '>' + Rotor.esc(value) + '</dd>';
  }
  function at(ms) {
    if (ms == null) return null;
    const s = (ms - Rotor.now()) / 1000;
    return Rotor.when(ms) + (s > 0 ? ' (in ' + Rotor.dur(s) + ')' : ' (' + Rotor.dur(-s) + ' ago)');
  }
  // b = [name, pct, limit_reached, reset_at (a locked bucket: when the lock may lift), window_secs]
  function bucket(b) {
    const state = b[2] ? 'limit reached' : Math.round(b[1]) + '% used';
    return item(b[0].replace(/^codex_/, ''), state + (b[3] != null ? ' · resets ' + at(b[3]) : ''));
  }
  // What holds the account off requests, each with its own end: a refusal cooldown, a quota
  // window, a model family the plan lacks (explain's `holds`).
  const HOLD = { status: 'Status', tokens: 'Tokens', refresh_ambiguous: 'Refresh ambiguous', cloudflare: 'Cloudflare cooldown', refused: 'Refusal cooldown',
    not_included: 'Not in plan', quota: 'Quota', busy: 'Busy' };
  function holds(explain) {
    if (!explain || !explain.holds) return '';
    return explain.holds.map((h) => item('Held: ' + (HOLD[h.kind] || h.kind),
      h.reason + (h.until != null ? ' — until ' + at(h.until) : ''), 'problem')).join('');
  }
  function body(r, explain) {
    let why = 'asking the account…';
    if (explain) why = explain.available ? 'available now' : explain.reasons.join('; ') + (explain.until ? ' — until ' + at(explain.until) : '');
    if (explain === false) why = 'the account did not answer';
    const owner = r.owner === undefined ? null : r.owner || 'no live node';
    return item('Id', r.id) + item('Owner node', owner) + item('Plan', r.plan || 'plan unknown') + item('Status', Rotor.statusLabel(r.ds)) +
      item('Available', why) + holds(explain) + item('Status reason', r.why, 'problem') + item('Last error', r.err, 'problem') +
      r.b.map(bucket).join('') + item('Cooldown until', at(r.cd)) + item('Leases', String(r.l)) +
      item('Requests', String(r.r)) + item('Tokens', String(r.tk)) + item('Last used', r.lu ? at(r.lu) : 'never');
  }

  Rotor.details = {
    async open(id) {
      const r = Rotor.state.data && Rotor.state.data.accounts.find((a) => a.id === id);
      if (!r) return;
      $('details-title').textContent = r.label || r.id;
      $('details-body').innerHTML = body(r, null);
      const d = $('details-dialog');
      if (!d.open) d.showModal();
      let explain;
      try { explain = await Rotor.api('GET', 'admin/accounts/' + encodeURIComponent(id) + '/explain'); } catch (_) { explain = false; }
      if (d.open && $('details-title').textContent === (r.label || r.id)) $('details-body').innerHTML = body(r, explain);
    },
  };
})();
