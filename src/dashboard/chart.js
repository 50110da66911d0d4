// Usage-over-time chart drawn by hand on a canvas: requests per time slot as bars (errors in
// red on top), tokens as a line on the right axis. The series comes from the server
// (`series.points` = [t, requests, errors, upstream_429s, input_tokens, output_tokens]).
'use strict';
(function () {
  const Rotor = (window.Rotor = window.Rotor || {});
  const C = { bar: '#8fb3f5', err: '#cf222e', line: '#8250df', grid: '#eceff3', ink: '#6a737d' };

  // The smallest 4 × (1|2|5 × 10^k) at or above v, so the four grid steps are round numbers.
  function niceMax(v) {
    const step = Math.max(v, 1) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(step)));
    for (const m of [1, 2, 5, 10]) if (m * p >= step) return 4 * Math.max(1, m * p);
    return 40 * p;
  }

  function draw(canvas, series, legend) {
    const pts = series.points || [];
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 800, h = canvas.clientHeight || 180;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pad = { l: 44, r: 52, t: 10, b: 22 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const maxReq = niceMax(Math.max(0, ...pts.map((p) => p[1])));
    const maxTok = niceMax(Math.max(0, ...pts.map((p) => p[4] + p[5])));
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'middle';
    // grid + left/right axis labels
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ph - (ph * i) / 4;
      g.strokeStyle = C.grid; g.lineWidth = 1;
      g.beginPath(); g.moveTo(pad.l, Math.round(y) + 0.5); g.lineTo(pad.l + pw, Math.round(y) + 0.5); g.stroke();
      g.fillStyle = C.ink; g.textAlign = 'right';
      g.fillText(Rotor.num(Math.round((maxReq * i) / 4)), pad.l - 6, y);
      g.textAlign = 'left';
      g.fillText(Rotor.num(Math.round((maxTok * i) / 4)), pad.l + pw + 6, y);
    }
    if (!pts.length) return;
    const slot = pw / pts.length;
    const bw = Math.max(1, slot * 0.72);
    pts.forEach((p, i) => {
      const x = pad.l + i * slot + (slot - bw) / 2;
      const hr = (p[1] / maxReq) * ph, he = (p[2] / maxReq) * ph;
      g.fillStyle = C.bar; g.fillRect(x, pad.t + ph - hr, bw, hr - he);
      if (he > 0) { g.fillStyle = C.err; g.fillRect(x, pad.t + ph - he, bw, he); }
    });
    g.strokeStyle = C.line; g.lineWidth = 1.5; g.beginPath();
    pts.forEach((p, i) => {
      const x = pad.l + i * slot + slot / 2, y = pad.t + ph - ((p[4] + p[5]) / maxTok) * ph;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
    // time axis: a label every 30 min, counted back from now
    g.fillStyle = C.ink; g.textAlign = 'center'; g.textBaseline = 'top';
    const slotMin = series.slot_ms / 60000;
    const every = Math.max(1, Math.round(30 / slotMin));
    for (let i = pts.length - 1, k = 0; i >= 0; i -= every, k++) {
      const x = pad.l + i * slot + slot / 2;
      const ago = Math.round((pts.length - 1 - i) * slotMin);
      g.fillText(k === 0 ? 'now' : '−' + (ago >= 60 ? (ago / 60) + 'h' : ago + 'm'), x, pad.t + ph + 6);
    }
    if (legend) {
      const total = pts.reduce((a, p) => [a[0] + p[1], a[1] + p[2], a[2] + p[3], a[3] + p[4] + p[5]], [0, 0, 0, 0]);
      legend.textContent = 'last ' + Math.round((pts.length * slotMin) / 60) + 'h: ' + total[0] + ' requests · ' + total[1] +
        ' errors · ' + total[2] + ' upstream 429s · ' + Rotor.num(total[3]) + ' tokens  (bars: requests, red: errors, line: tokens)';
    }
  }

  Rotor.chart = { draw };
})();
