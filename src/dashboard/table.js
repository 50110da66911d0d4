// The accounts table, virtualised: rows have a fixed height and only the rows in (or near) the
// viewport exist in the DOM. A row's element is rebuilt only when its data changed since the
// last poll (compared by a signature string), so 1 000 accounts polled every 3 s stay cheap.
// Countdowns and "last used" are updated in place once a second for the visible rows only.
// The order of the rows is the caller's (see sort.js).
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const OVERSCAN = 6;
  const MAIN = [['primary', '5h'], ['secondary', 'weekly'], ['code_review', 'review']];
  Rotor.MAIN_BUCKETS = MAIN.map((m) => m[0]);
  const t = { body: null, spacer: null, foot: null, rowH: 58, rows: [], total: 0, cache: new Map(), shown: new Map(), lastRenderMs: 0 };

  function level(pct, full) { return full ? 'full' : pct >= 90 ? 'hot' : pct >= 60 ? 'warn' : 'ok'; }
  function windowTitle(name, secs) {
    if (secs === 604800) return 'weekly';
    if (secs) return Rotor.dur(secs).replace(/ 0+m$/, '').replace(' 00m', '');
    return name;
  }
  function resetText(at, nowMs) {
    if (at == null) return '';
    const s = (at - nowMs) / 1000;
    return s <= 0 ? 'reset due' : 'resets in ' + Rotor.dur(s);
  }
  function ago(at, nowMs) { return Rotor.dur((nowMs - at) / 1000) + ' ago'; }
  // b = [name, pct, limit_reached, reset_at (a locked bucket: when the lock may lift), window_secs]
  function bar(b, title, nowMs) {
    if (!b) return '<div class="bar none">–</div>';
    const pct = Math.round(b[1]);
    return '<div class="bar ' + level(pct, b[2]) + '" data-bucket="' + Rotor.esc(b[0]) + '" data-pct="' + pct + '"' + (b[2] ? ' data-limit="1"' : '') + '>' +
      '<div class="bar-top"><span>' + Rotor.esc(title) + '</span><b>' + (b[2] ? 'limit reached' : pct + '%') + '</b></div>' +
      '<div class="bar-track"><div class="bar-fill"></div></div>' +
      '<div class="bar-reset" data-reset="' + (b[3] == null ? '' : b[3]) + '"' + (b[3] == null ? '' : ' title="resets ' + Rotor.esc(Rotor.when(b[3])) + '"') + '>' +
      resetText(b[3], nowMs) + '</div></div>';
  }
  function extras(list, nowMs) {
    if (!list.length) return '<div class="bar none">–</div>';
    return '<div class="extras">' + list.map((b) => {
      const pct = Math.round(b[1]);
      const [id, win] = b[0].split('.');
      return '<div class="bar ' + level(pct, b[2]) + '" data-bucket="' + Rotor.esc(b[0]) + '" data-pct="' + pct + '"' + (b[2] ? ' data-limit="1"' : '') +
        ' title="' + Rotor.esc(b[3] == null ? '' : 'resets ' + Rotor.when(b[3]) + ' (' + resetText(b[3], nowMs).replace('resets ', '') + ')') + '"><div class="bar-top"><span>' + Rotor.esc(id.replace(/^codex_/, '') + ' ' + windowTitle(win, b[4])) +
        '</span><b>' + (b[2] ? 'limit' : pct + '%') + '</b></div><div class="bar-track"><div class="bar-fill"></div></div></div>';
    }).join('') + '</div>';
  }
  function rowHtml(r, nowMs) {
    const by = new Map(r.b.map((b) => [b[0], b]));
    const other = r.b.filter((b) => !MAIN.some((m) => m[0] === b[0]));
    const enabled = r.st !== 'disabled';
    // Clustered, the row names the node that owns the account (`owner` is absent on one node).
    const owner = r.owner === undefined ? [] : ['on ' + (r.owner || 'no live node')];
    // First, so a narrow column still shows it.
    const sub = owner.concat([r.id, r.plan || 'plan unknown']).map(Rotor.esc).join(' · ');
    const problem = r.err || r.why;
    const primary = by.get('primary');
    return '<div class="acct"><button class="acct-label" data-action="details" title="' + Rotor.esc(r.label || r.id) + ' — details">' + Rotor.esc(r.label || r.id) + '</button>' +
      '<div class="acct-sub">' + sub + '</div>' + (problem ? '<div class="acct-err" title="' + Rotor.esc(problem) + '">' + Rotor.esc(problem) + '</div>' : '') + '</div>' +
      '<div><button class="badge ' + Rotor.esc(r.ds) + '" data-badge="' + Rotor.esc(r.ds) + '" data-action="explain" title="Why? (explain)">' + Rotor.esc(Rotor.statusLabel(r.ds)) + '</button>' +
      (r.v ? '<span class="verify" title="quota to be re-checked">verify</span>' : '') + '</div>' +
      bar(primary, primary ? windowTitle('5h', primary[4]) : '5h', nowMs) + bar(by.get('secondary'), 'weekly', nowMs) + bar(by.get('code_review'), 'code review', nowMs) +
      extras(other, nowMs) +
      '<div class="num">' + r.l + '</div><div class="num">' + Rotor.num(r.r) + '</div><div class="num">' + Rotor.num(r.tk) + '</div>' +
      '<div class="num small muted"' + (r.lu ? ' data-at="' + r.lu + '" title="' + Rotor.esc(Rotor.when(r.lu)) + '">' + ago(r.lu, nowMs) : '>never') + '</div>' +
      '<div class="actions"><button class="small" data-action="probe" title="Read quota from the usage endpoint now">Probe</button>' +
      '<button class="small" data-action="' + (enabled ? 'disable' : 'enable') + '">' + (enabled ? 'Disable' : 'Enable') + '</button>' +
      '<button class="small danger" data-action="remove">Remove</button></div>';
  }
  function build(r, sig, nowMs) {
    const el = document.createElement('div');
    el.className = 'row';
    el.setAttribute('role', 'row');
    el.dataset.id = r.id;
    el.dataset.status = r.ds;
    el.innerHTML = rowHtml(r, nowMs);
    // Widths through the CSSOM: the page's CSP forbids inline style attributes.
    for (const f of el.querySelectorAll('.bar[data-pct]')) {
      f.querySelector('.bar-fill').style.width = Math.min(100, Number(f.dataset.pct)) + '%';
    }
    return { el, sig };
  }

  function render() {
    const t0 = performance.now();
    const nowMs = Rotor.now();
    const top = t.body.scrollTop;
    const h = t.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / t.rowH) - OVERSCAN);
    const last = Math.min(t.rows.length, Math.ceil((top + h) / t.rowH) + OVERSCAN);
    const want = new Set();
    for (let i = first; i < last; i++) {
      const r = t.rows[i];
      want.add(r.id);
      const sig = JSON.stringify(r);
      let c = t.cache.get(r.id);
      if (!c || c.sig !== sig) {
        const fresh = build(r, sig, nowMs);
        if (c && c.el.parentNode) c.el.replaceWith(fresh.el);
        c = fresh;
        t.cache.set(r.id, c);
      }
      c.el.style.top = i * t.rowH + 'px';
      if (!c.el.parentNode) t.body.appendChild(c.el);
      t.shown.set(r.id, c.el);
    }
    for (const [id, el] of t.shown) {
      if (!want.has(id)) { el.remove(); t.shown.delete(id); }
    }
    let empty = t.body.querySelector('.empty');
    if (!t.rows.length && !empty) {
      empty = document.createElement('div'); empty.className = 'empty';
      empty.textContent = t.total ? 'No account matches this filter.' : 'No accounts yet — add one with “Add account”.';
      t.body.appendChild(empty);
    } else if (t.rows.length && empty) empty.remove();
    t.lastRenderMs = performance.now() - t0;
    Rotor.table.lastRenderMs = t.lastRenderMs;
  }

  Rotor.table = {
    lastRenderMs: 0,
    init(body, spacer, foot) {
      t.body = body; t.spacer = spacer; t.foot = foot;
      body.addEventListener('scroll', () => requestAnimationFrame(render), { passive: true });
    },
    layout() {
      const v = getComputedStyle(document.documentElement).getPropertyValue('--row-h');
      t.rowH = parseInt(v, 10) || 58;
      if (t.rows) render();
    },
    setRows(rows, total) {
      t.rows = rows; t.total = total;
      t.spacer.style.height = rows.length * t.rowH + 'px';
      // The body grows with its rows up to two thirds of the window, then scrolls.
      const cap = Math.max(6 * t.rowH, Math.round(window.innerHeight * 0.66));
      t.body.style.height = Math.min(Math.max(rows.length, 2) * t.rowH + 2, cap) + 'px';
      const ids = new Set(rows.map((r) => r.id));
      for (const id of t.cache.keys()) if (!ids.has(id)) t.cache.delete(id);
      t.foot.textContent = rows.length === total ? total + ' accounts' : rows.length + ' of ' + total + ' accounts';
      render();
    },
    tick(nowMs) {
      for (const el of t.body.querySelectorAll('.bar-reset[data-reset]')) {
        const at = el.dataset.reset;
        if (at) el.textContent = resetText(Number(at), nowMs);
      }
      for (const el of t.body.querySelectorAll('[data-at]')) el.textContent = ago(Number(el.dataset.at), nowMs);
    },
    rendered() { return t.shown.size; },
  };
})();
