// Draws the harness dashboard from the JSON block #report-data.
// Report content is hostile by design (HTML and JS fragments, RTL, 50k-character strings): it
// only ever becomes text nodes or plain attribute values (title, data-*), never markup, and long
// values are cut with a button to see them whole. Details are drawn only for the selected run,
// so a page of hundreds of runs stays quick.
'use strict';
(() => {
  const app = document.getElementById('app');
  try {
    draw(app);
  } catch (e) {
    // A report this script does not understand must say so, not leave a blank page.
    const p = document.createElement('p');
    p.className = 'crash';
    p.textContent = `The dashboard could not draw these reports: ${e && e.stack ? e.stack : e}`;
    app.replaceChildren(p);
    document.body.setAttribute('data-rendered', 'error');
  }
})();

function draw(app) {
  // ---- small DOM helpers ------------------------------------------------------------------

  // Element with properties (class, text, title, data-*, on<event>) and children (strings
  // become text nodes).
  const h = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    add(e, kids);
    return e;
  };
  const add = (e, kids) => {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  };

  // A value cut to `max` characters, with a button to show it whole.
  const clip = (value, max) => {
    const text = String(value);
    const box = h('bdi', { class: 'val' });
    if (text.length <= max) {
      box.textContent = text;
      return box;
    }
    let short = text.slice(0, max);
    const last = short.charCodeAt(short.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) short = short.slice(0, -1); // no half emoji
    const body = h('span', null, short + '\u2026');
    const more = `+${(text.length - short.length).toLocaleString()} chars`;
    const btn = h('button', { type: 'button', class: 'more', title: 'show the whole value' }, more);
    btn.addEventListener('click', (ev) => {
      ev.stopPropagation();
      const open = !box.classList.contains('open');
      box.classList.toggle('open', open);
      body.textContent = open ? text : short + '\u2026';
      btn.textContent = open ? 'less' : more;
    });
    return add(box, [body, btn]);
  };

  // A JSON value for a table cell.
  const show = (v, max) => {
    if (v === null || v === undefined) return h('span', { class: 'null' }, 'null');
    if (v === '') return h('span', { class: 'null' }, '""');
    return clip(typeof v === 'string' ? v : JSON.stringify(v), max);
  };

  const num = (n, digits) =>
    typeof n === 'number' && isFinite(n)
      ? n.toLocaleString('en-US', { maximumFractionDigits: digits || 0 })
      : '\u2013';
  const ms = (n) => (typeof n !== 'number' || n < 1000 ? `${num(n)} ms` : `${num(n / 1000, n < 100000 ? 2 : 1)} s`);
  const rate = (n) => num(n, n < 10 ? 1 : 0);
  const badge = (r) => h('span', { class: `badge ${r.passed ? 'pass' : 'fail'}` }, r.passed ? 'PASS' : 'FAIL');
  const outcomeClass = (o) => (o === 'ok' || o.startsWith('ok') ? 'ok' : o.startsWith('refused') ? 'refused' : 'error');
  const who = (c) => (c === null || c === undefined ? 'server' : `client ${c}`);
  const list = (v) => (Array.isArray(v) ? v : []);

  // ---- data ---------------------------------------------------------------------------------

  const data = JSON.parse(document.getElementById('report-data').textContent);
  // Failed runs first, then the order of the reports (scenario, seed).
  const given = list(data.runs);
  const ordered = [...given.filter((r) => !r.passed), ...given.filter((r) => r.passed)];
  const runs = ordered.map((r, i) => ({
    ...r,
    index: i,
    timeline: list(r.timeline),
    conflicts: list(r.conflicts),
    failures: list(r.failures),
    faults: list(r.faults),
    tolerances: list(r.tolerances),
    client_schemas: list(r.client_schemas),
  }));
  for (const r of runs) {
    r.haystack = [r.scenario, `seed ${r.seed}`, r.seed, r.file, r.passed ? 'pass' : 'fail', ...r.faults]
      .join(' ')
      .toLowerCase();
  }
  const byFile = new Map(runs.map((r) => [r.file, r]));
  const failed = runs.filter((r) => !r.passed);

  // ---- header -------------------------------------------------------------------------------

  const sum = (rs, f) => rs.reduce((a, r) => a + (Number(f(r)) || 0), 0);
  const chip = (value, label, cls) => h('span', { class: `chip ${cls || ''}` }, h('b', null, value), label);
  const header = h('header', { class: 'top' },
    h('div', null,
      h('h1', null, 'tdsync harness'),
      h('div', { class: 'source' }, 'reports in ', clip(data.source || '', 200), ` \u00b7 page written ${data.generated || ''}`)),
    h('div', { class: 'chips' },
      chip(num(runs.length), 'runs'),
      chip(num(runs.length - failed.length), 'passed', 'ok'),
      chip(num(failed.length), 'failed', failed.length ? 'fail' : ''),
      chip(num(sum(runs, (r) => r.conflicts.length)), 'conflicts'),
      chip(num(sum(runs, (r) => r.events)), 'events'),
      chip(ms(sum(runs, (r) => r.duration_ms)), 'total')));

  // ---- runs table ---------------------------------------------------------------------------

  const columns = [
    { key: 'result', label: 'result', sort: (r) => (r.passed ? 1 : 0), cell: badge },
    { key: 'scenario', label: 'scenario', sort: (r) => r.scenario, cell: (r) => clip(r.scenario, 40) },
    { key: 'seed', label: 'seed', num: true, sort: (r) => r.seed, cell: (r) => String(r.seed) },
    { key: 'clients', label: 'clients', num: true, sort: (r) => r.clients, cell: (r) => String(r.clients) },
    { key: 'actions', label: 'actions', num: true, sort: (r) => r.actions, cell: (r) => num(r.actions) },
    { key: 'duration', label: 'duration', num: true, sort: (r) => r.duration_ms, cell: (r) => ms(r.duration_ms) },
    { key: 'events', label: 'events', num: true, sort: (r) => r.events, cell: (r) => num(r.events) },
    { key: 'rate', label: 'events/s', num: true, sort: (r) => r.events_per_sec, cell: (r) => rate(r.events_per_sec) },
    {
      key: 'conflicts', label: 'conflicts', num: true, sort: (r) => r.conflicts.length,
      cell: (r) => h('span', { class: r.conflicts.length ? 'count-warn' : 'muted' }, String(r.conflicts.length)),
    },
    {
      key: 'failures', label: 'failures', num: true, sort: (r) => r.failures.length,
      cell: (r) => h('span', { class: r.failures.length ? 'count-bad' : 'muted' }, String(r.failures.length)),
    },
    // One line, cut by CSS: the whole list is in the tooltip and in the run's details.
    {
      key: 'faults', label: 'faults', sort: (r) => r.faults.length, cls: 'faults',
      cell: (r) => h('div', { class: 'one-line', title: r.faults.join(', ').slice(0, 2000) || null },
        r.faults.length ? `${r.faults.length}: ${r.faults.join(', ').slice(0, 400)}` : '\u2013'),
    },
  ];

  const filterInput = h('input', { type: 'search', placeholder: 'filter: scenario, seed, fault, pass/fail\u2026', 'aria-label': 'filter runs' });
  const statusSelect = h('select', { 'aria-label': 'show' },
    h('option', { value: 'all' }, 'all runs'),
    h('option', { value: 'fail' }, 'failed only'),
    h('option', { value: 'pass' }, 'passed only'),
    h('option', { value: 'conflicts' }, 'with conflicts'));
  const shownNote = h('span', { class: 'muted' });

  const sortState = { key: null, dir: 1 };
  const heads = columns.map((c) => {
    const th = h('th', { class: c.num ? 'num' : null, scope: 'col', 'data-key': c.key }, c.label);
    th.addEventListener('click', () => {
      sortState.dir = sortState.key === c.key ? -sortState.dir : 1;
      sortState.key = c.key;
      for (const o of heads) o.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', sortState.dir > 0 ? 'ascending' : 'descending');
      refresh();
    });
    return th;
  });

  // Rows are built once; filtering and sorting only reorder and hide them.
  const rows = runs.map((r) => {
    const tr = h('tr', { class: `run ${r.passed ? 'pass' : 'fail'}`, 'data-file': r.file, tabindex: 0 },
      columns.map((c) => h('td', { class: [c.num ? 'num' : '', c.cls || ''].join(' ').trim() || null }, c.cell(r))));
    tr.addEventListener('click', () => select(r.file, true));
    tr.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') select(r.file, true);
    });
    r.row = tr;
    return tr;
  });
  const tbody = h('tbody', null, rows);
  const foot = h('tr');
  const table = h('table', { class: 'runs' }, h('thead', null, h('tr', null, heads)), tbody, h('tfoot', null, foot));

  const visible = () => {
    const q = filterInput.value.trim().toLowerCase();
    const status = statusSelect.value;
    return runs.filter((r) =>
      (!q || q.split(/\s+/).every((w) => r.haystack.includes(w))) &&
      (status === 'all' ||
        (status === 'fail' && !r.passed) ||
        (status === 'pass' && r.passed) ||
        (status === 'conflicts' && r.conflicts.length > 0)));
  };

  function refresh() {
    let shown = visible();
    const col = columns.find((c) => c.key === sortState.key);
    if (col) {
      shown = shown.slice().sort((a, b) => {
        const x = col.sort(a);
        const y = col.sort(b);
        const d = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return d * sortState.dir || a.index - b.index;
      });
    }
    const keep = new Set(shown);
    for (const r of runs) r.row.hidden = !keep.has(r);
    const frag = document.createDocumentFragment();
    for (const r of shown) frag.append(r.row);
    for (const r of runs) if (!keep.has(r)) frag.append(r.row);
    tbody.append(frag);
    const bad = shown.filter((r) => !r.passed).length;
    const events = sum(shown, (r) => r.events);
    const millis = sum(shown, (r) => r.duration_ms);
    foot.replaceChildren(
      h('td', { colspan: 2 }, `${shown.length} run${shown.length === 1 ? '' : 's'}: ${shown.length - bad} pass, ${bad} fail`),
      h('td'), h('td'),
      h('td', { class: 'num' }, num(sum(shown, (r) => r.actions))),
      h('td', { class: 'num' }, ms(millis)),
      h('td', { class: 'num' }, num(events)),
      h('td', { class: 'num', title: 'all events over all run time' }, rate(millis ? events / (millis / 1000) : 0)),
      h('td', { class: 'num' }, num(sum(shown, (r) => r.conflicts.length))),
      h('td', { class: 'num' }, num(sum(shown, (r) => r.failures.length))),
      h('td'));
    shownNote.textContent = shown.length === runs.length ? '' : `${shown.length} of ${runs.length} shown`;
  }
  filterInput.addEventListener('input', refresh);
  statusSelect.addEventListener('change', refresh);

  const runsPanel = h('section', { class: 'panel', id: 'runs' },
    h('div', { class: 'controls' }, filterInput, statusSelect, shownNote,
      h('span', { class: 'muted' }, 'click a run for its timeline, conflicts and failures; click a heading to sort')),
    h('div', { class: 'table-wrap' }, table));

  // ---- one run ------------------------------------------------------------------------------

  const detail = h('section', { class: 'panel', id: 'detail' });

  const copyButton = (text, node) => {
    const btn = h('button', { type: 'button', class: 'copy' }, 'copy');
    const done = (ok) => {
      btn.textContent = ok ? 'copied' : 'selected: press Ctrl-C';
      setTimeout(() => { btn.textContent = 'copy'; }, 1600);
    };
    const fallback = () => {
      const range = document.createRange();
      range.selectNodeContents(node);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      let ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      done(ok);
    };
    btn.addEventListener('click', () => {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(() => done(true), fallback);
      } else {
        fallback();
      }
    });
    return btn;
  };

  const repro = (cmd) => {
    const code = h('code', { class: 'repro-cmd' }, cmd);
    return h('div', { class: 'repro' }, h('span', { class: 'muted' }, 'reproduce'), code, copyButton(cmd, code));
  };

  const section = (title, count, body) =>
    h('section', { class: `part part-${title.toLowerCase().replace(/[^a-z]+/g, '-')}` },
      h('h3', null, count === null ? title : `${title} (${count})`), body);

  // One lane per client plus the server's: steps are marks placed by step number and coloured
  // by outcome; the server lane shows its own steps (restarts) and every advance of its head.
  const timeline = (r) => {
    const tl = r.timeline;
    if (!tl.length) return h('p', { class: 'empty' }, 'No timeline: the run stopped before its first step.');
    const steps = tl.reduce((m, e) => Math.max(m, e.step + 1), 1);
    const clients = tl.reduce((m, e) => (e.client === null ? m : Math.max(m, e.client + 1)), r.clients || 0);
    const describe = (e) => `step ${e.step} \u00b7 ${num(e.at_ms)} ms \u00b7 ${who(e.client)} \u00b7 ${e.action} \u2192 ${e.outcome} \u00b7 server head ${e.head}`;
    const info = h('div', { class: 'tl-info muted' }, 'Hover or click a mark to see its step.');
    const tracks = [h('div', { class: 'track' })];
    for (let c = 0; c < clients; c++) tracks.push(h('div', { class: 'track' }));
    const place = (mark, step) => {
      mark.style.left = `${(100 * step) / steps}%`;
      mark.style.width = `${100 / steps}%`;
    };
    const marks = [];
    let head = 0;
    for (const e of tl) {
      const lane = e.client === null || e.client === undefined ? 0 : e.client + 1;
      const m = h('span', { class: `mark ${outcomeClass(String(e.outcome))}`, title: describe(e), 'data-m': marks.length });
      place(m, e.step);
      tracks[lane].append(m);
        marks.push({ text: describe(e) });
      if (e.head !== head) {
        const text = `server head ${head} \u2192 ${e.head} at step ${e.step} (${who(e.client)} ${e.action})`;
        const hm = h('span', { class: 'mark head', title: text, 'data-m': marks.length });
        place(hm, e.step);
        tracks[0].append(hm);
        marks.push({ text });
        head = e.head;
      }
    }
    let picked = null;
    const pick = (ev, sticky) => {
      const t = ev.target;
      if (!(t instanceof Element) || !t.classList.contains('mark')) return;
      const i = Number(t.getAttribute('data-m'));
      if (!marks[i]) return;
      if (sticky) {
        if (picked) picked.classList.remove('picked');
        picked = t;
        t.classList.add('picked');
      }
      info.textContent = marks[i].text;
    };
    const schema = (c) => (r.client_schemas[c] !== undefined ? ` (v${r.client_schemas[c]})` : '');
    const lanes = h('div', { class: 'timeline', onmouseover: (ev) => pick(ev, false), onclick: (ev) => pick(ev, true) },
      tracks.map((t, i) => h('div', { class: 'lane' },
        h('span', { class: 'lane-label' }, i === 0 ? 'server' : `client ${i - 1}${schema(i - 1)}`), t)),
      h('div', { class: 'axis' }, h('span'),
        h('div', { class: 'ticks' }, [...new Set([0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * (steps - 1))))].map((k) => {
          // Under the middle of the step's marks.
          const tick = h('span', null, `step ${k}`);
          tick.style.left = `${(100 * (k + 0.5)) / steps}%`;
          return tick;
        }))));
    const counts = { ok: 0, refused: 0, error: 0 };
    for (const e of tl) counts[outcomeClass(String(e.outcome))] += 1;
    const legend = h('div', { class: 'legend' },
      ['ok', 'refused', 'error'].map((k) => h('span', null, h('span', { class: `mark ${k}` }), `${k} (${counts[k]})`)),
      h('span', null, h('span', { class: 'mark head' }), 'server head advanced'),
      h('span', null, `${tl.length} steps over ${ms(tl.reduce((m, e) => Math.max(m, e.at_ms), 0))}`));
    return h('div', null, lanes, legend, info);
  };

  // Columns of a row image, as [name, value] pairs.
  const columnsOf = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v) : null);
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  // A clobbered version and its winner side by side: the conflict's fields first and marked,
  // then other columns that differ; equal columns behind a toggle.
  const conflictCard = (c) => {
    const fields = list(c.fields).map(String);
    const left = columnsOf(c.clobbered);
    const right = columnsOf(c.winner);
    const l = new Map(left || []);
    const rt = new Map(right || []);
    const names = [...new Set([...fields, ...l.keys(), ...rt.keys()])];
    const kindOf = (k) => (fields.includes(k) ? 'changed' : same(l.get(k), rt.get(k)) ? 'same' : 'differs');
    const order = { changed: 0, differs: 1, same: 2 };
    names.sort((a, b) => order[kindOf(a)] - order[kindOf(b)]);
    const cell = (side, map, k) => {
      if (!side) return h('td', { class: 'null' }, k === names[0] ? '(no row)' : '');
      return h('td', null, map.has(k) ? show(map.get(k), 300) : h('span', { class: 'null' }, '(absent)'));
    };
    const sameCount = names.filter((k) => kindOf(k) === 'same').length;
    const tbl = h('table', { class: 'versions' },
      h('colgroup', null, h('col', { class: 'col-name' }), h('col'), h('col')),
      h('thead', null, h('tr', null,
        h('th', null, 'column'),
        h('th', { class: 'clobbered' }, 'clobbered',
          h('small', null, `seq ${c.clobbered_seq ?? '\u2013'} \u00b7 by ${c.clobbered_by ?? 'unknown device'}`)),
        h('th', { class: 'winner' }, 'winner',
          h('small', null, `seq ${c.winning_seq ?? '\u2013'} \u00b7 by ${c.winning_by ?? 'unknown device'}`)))),
      h('tbody', null, names.map((k) => h('tr', { class: kindOf(k) },
        h('td', null, clip(k, 60)), cell(left, l, k), cell(right, rt, k)))));
    const toggle = sameCount
      ? h('button', { type: 'button' }, `show ${sameCount} equal column${sameCount === 1 ? '' : 's'}`)
      : null;
    if (toggle) {
      toggle.addEventListener('click', () => {
        const all = tbl.classList.toggle('all');
        toggle.textContent = all ? 'hide equal columns' : `show ${sameCount} equal column${sameCount === 1 ? '' : 's'}`;
      });
    }
    return h('article', { class: 'card conflict', 'data-conflict': c.id },
      h('header', null,
        h('strong', null, clip(c.entity_type, 40), ' ', clip(c.entity_id, 80)),
        h('span', { class: 'muted' }, 'fields'), fields.map((f) => h('span', { class: 'field-chip' }, clip(f, 60))),
        h('span', { class: 'muted' }, `conflict #${c.id}`),
        right ? null : h('span', { class: 'muted' }, 'the winner deleted the row')),
      h('div', { class: 'body' }, tbl, toggle));
  };

  const failureCard = (f) => {
    const entity = Array.isArray(f.entity) ? f.entity : null;
    const diff = list(f.diff);
    const trace = list(f.trace);
    return h('article', { class: 'card failure' },
      h('header', null, h('span', { class: 'kind' }, clip(f.kind, 40)), clip(f.message, 600)),
      h('div', { class: 'body' },
        entity ? h('p', null, h('span', { class: 'muted' }, 'entity '), clip(entity[0], 60), ' ', h('code', null, clip(entity[1], 120))) : null,
        diff.length
          ? h('table', { class: 'diff' },
            h('colgroup', null, h('col', { class: 'col-name' }), h('col'), h('col')),
            h('thead', null, h('tr', null, h('th', null, 'column'), h('th', null, 'server'), h('th', null, 'client'))),
            h('tbody', null, diff.map((d) => h('tr', null,
              h('td', null, clip(d.column, 60)),
              h('td', { class: 'server' }, clip(d.server, 300)),
              h('td', { class: 'client' }, clip(d.client, 300))))))
          : null,
        trace.length
          ? [h('h4', { class: 'muted' }, `event trace of the entity (${trace.length})`),
            h('table', { class: 'trace' },
              h('thead', null, h('tr', null, ['replica', 'seq', 'action', 'device', 'what it wrote'].map((t) => h('th', null, t)))),
              h('tbody', null, trace.map((t) => h('tr', { class: t.replica === 'server' ? 'server' : 'client' },
                h('td', null, clip(t.replica, 40)),
                h('td', { class: 'num' }, t.seq === null || t.seq === undefined ? '\u2013' : String(t.seq)),
                h('td', null, clip(t.action, 80)),
                h('td', null, clip(t.device, 40)),
                h('td', null, clip(t.detail, 300))))))]
          : null));
  };

  const renderRun = (r) => {
    const schemas = r.client_schemas.length ? ` at td schema ${[...new Set(r.client_schemas)].join(', ')}` : '';
    const meta = h('dl', { class: 'meta' },
      [
        ['clients', `${r.clients}${schemas}`],
        ['actions', num(r.actions)],
        ['transport', r.transport],
        ['faults', r.faults.join(', ') || 'none'],
        ['duration', ms(r.duration_ms)],
        ['events', `${num(r.events)} (${rate(r.events_per_sec)} events/s)`],
        ['quiescence', `${r.quiescence_rounds} round(s) of push and pull`],
      ].map(([k, v]) => [h('dt', null, k), h('dd', null, clip(v ?? '', 300))]));
    const parts = [
      h('h2', null, badge(r), clip(r.scenario, 80), h('span', { class: 'muted' }, `seed ${r.seed}`),
        h('span', { class: 'muted' }, `\u00b7 ${r.file}.json`)),
      meta,
      repro(String(r.repro ?? '')),
    ];
    if (r.failures.length) parts.push(section('Failures', r.failures.length, r.failures.map(failureCard)));
    parts.push(section('Timeline', null, timeline(r)));
    parts.push(section('Conflicts', r.conflicts.length,
      r.conflicts.length ? r.conflicts.map(conflictCard) : h('p', { class: 'empty' }, 'No write clobbered a value its writer had not seen.')));
    if (Array.isArray(r.shrunk_actions)) {
      parts.push(section('Shrunk to', r.shrunk_actions.length,
        h('ol', { class: 'actions' }, r.shrunk_actions.map((a) => h('li', null, clip(JSON.stringify(a), 300))))));
    }
    if (r.tolerances.length) {
      parts.push(section('Tolerated differences', r.tolerances.length,
        h('ul', null, r.tolerances.map((t) => h('li', { class: 'muted' }, clip(t, 300))))));
    }
    detail.replaceChildren(...parts);
  };

  // ---- selection (#run=<file>) ----------------------------------------------------------------

  let current = null;
  function select(file, push) {
    const r = byFile.get(file);
    if (!r) return;
    if (current) current.row.classList.remove('selected');
    current = r;
    r.row.classList.add('selected');
    renderRun(r);
    if (push) {
      const hash = `#run=${encodeURIComponent(file)}`;
      if (location.hash !== hash) history.replaceState(null, '', hash);
      detail.scrollIntoView({ behavior: 'smooth', block: 'start' });
    }
  }
  const fromHash = () => {
    const m = /^#run=(.*)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  };
  window.addEventListener('hashchange', () => select(fromHash(), false));

  app.replaceChildren(header, runsPanel, detail);
  refresh();
  // Open on the run in the address, else the first failure, else the first run with conflicts.
  const first = byFile.get(fromHash()) || failed[0] || runs.find((r) => r.conflicts.length) || runs[0];
  if (first) select(first.file, false);
  document.title = `tdsync harness \u00b7 ${runs.length} runs \u00b7 ${failed.length} failed`;
  document.body.setAttribute('data-rendered', 'ok');
}
