// Sorting of the accounts table by any column. Text sorts in natural order (user2 before
// user10, as an operator reads labels), numbers as numbers, dates as dates (times, not the
// "3m ago" shown); accounts without a value go last in either direction, ties fall back to
// the label. The "serving now" view pins accounts holding leases on top, busiest first.
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const label = (r) => String(r.label || r.id);
  const used = (name) => (r) => { const b = r.b.find((x) => x[0] === name); return b ? b[1] : null; };
  const otherUsed = (r) => {
    const main = Rotor.MAIN_BUCKETS || [];
    const xs = r.b.filter((b) => !main.includes(b[0])).map((b) => b[1]);
    return xs.length ? Math.max(...xs) : null;
  };
  // key → [value of a row, the direction of a first click]
  const COLUMNS = {
    label: [label, 'asc'],
    status: [(r) => Rotor.STATUSES.indexOf(r.ds), 'asc'],
    primary: [used('primary'), 'desc'],
    secondary: [used('secondary'), 'desc'],
    code_review: [used('code_review'), 'desc'],
    other: [otherUsed, 'desc'],
    leases: [(r) => r.l, 'desc'],
    requests: [(r) => r.r, 'desc'],
    tokens: [(r) => r.tk, 'desc'],
    last_used: [(r) => r.lu, 'desc'],
  };
  const byLabel = (a, b) => collator.compare(label(a), label(b)) || collator.compare(a.id, b.id);

  function compare(a, b, value, sign) {
    const x = value(a), y = value(b);
    if (x == null || y == null) return x == null && y == null ? 0 : x == null ? 1 : -1;
    if (typeof x === 'string' || typeof y === 'string') return sign * collator.compare(String(x), String(y));
    return sign * (x - y);
  }

  Rotor.sort = {
    DEFAULT: { key: 'label', dir: 'asc' },
    has: (key) => Object.prototype.hasOwnProperty.call(COLUMNS, key),
    // The sort after a click on column `key`: the other direction on the same column, else
    // the column's own first direction.
    next(cur, key) {
      if (cur.key === key) return { key, dir: cur.dir === 'asc' ? 'desc' : 'asc' };
      return { key, dir: COLUMNS[key][1] };
    },
    // A sorted copy of `rows`; `pinLeased` puts the accounts holding leases first.
    rows(rows, sort, pinLeased) {
      const col = COLUMNS[sort.key] || COLUMNS.label;
      const sign = sort.dir === 'desc' ? -1 : 1;
      return rows.slice().sort((a, b) =>
        (pinLeased ? (b.l > 0) - (a.l > 0) || b.l - a.l : 0) ||
        compare(a, b, col[0], sign) || byLabel(a, b));
    },
  };
})();
