// The Nodes panel, shown only when the daemon runs in a cluster (the live feed then carries
// `cluster`, the report of GET /admin/cluster): every node with its lease state, the accounts
// it owns and can serve, and the address peers reach it at — this node first. A single node
// has no `cluster` in its feed and the panel stays hidden.
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const $ = (id) => document.getElementById(id);
  // Lease standing → badge colour of the account statuses (held is healthy, fenced is not).
  const BADGE = { held: 'active', live: 'active', fenced: 'banned', unacquired: 'expired' };

  function lease(n) {
    let text = n.standing;
    if (n.standing === 'held' && n.deadline_left_ms != null) text += ' · ' + Rotor.dur(n.deadline_left_ms / 1000) + ' left';
    if (n.epoch != null) text += ' · epoch ' + n.epoch;
    return '<span class="badge ' + (BADGE[n.standing] || 'disabled') + '" data-standing="' + Rotor.esc(n.standing) + '">' +
      Rotor.esc(n.standing) + '</span><span class="muted small">' + Rotor.esc(text.slice(n.standing.length)) + '</span>';
  }
  function row(n, self) {
    const s = n.summary || {};
    return '<tr data-node="' + Rotor.esc(n.id) + '"' + (self ? ' class="self"' : '') + '><td>' + Rotor.esc(n.id) +
      (self ? ' <span class="muted small">(this node)</span>' : '') + '</td><td>' + lease(n) + '</td>' +
      '<td class="num" data-owned>' + n.owned + '</td><td class="num" data-serving>' + (s.serving == null ? '–' : s.serving) + '</td>' +
      '<td><code>' + Rotor.esc(n.advertise) + '</code></td></tr>';
  }

  Rotor.nodes = {
    render(cluster) {
      const on = !!(cluster && cluster.enabled);
      $('nodes').hidden = !on;
      if (!on) return;
      const all = [cluster.node].concat(cluster.peers || []);
      $('nodes-sub').textContent = all.length + (all.length === 1 ? ' node' : ' nodes') + ' · ' +
        Object.keys(cluster.owners || {}).length + ' accounts owned';
      $('nodes-list').innerHTML = row(cluster.node, true) + (cluster.peers || []).map((p) => row(p, false)).join('');
    },
  };
})();
