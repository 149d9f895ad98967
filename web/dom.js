// Building DOM nodes without HTML strings: every piece of data becomes a
// text node or an attribute value, never markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// h('td', {class: 'x'}, 'text', otherNode)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

// The same for SVG elements.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export const $ = (id) => document.getElementById(id);

export function badge(status) {
  if (status === null || status === undefined || status === '') return h('span', { class: 'badge badge-none' }, '—');
  return h('span', { class: 'badge', 'data-status': String(status) }, String(status));
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

export function isTimestamp(v) {
  return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v);
}

export function when(v) {
  if (!v) return h('span', { class: 'muted' }, '—');
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return h('time', { datetime: d.toISOString(), title: String(v) }, dateFormat.format(d));
}

export function ago(v) {
  const seconds = (Date.now() - new Date(v).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 5) return 'just now';
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// A short, copyable id: the first block shown, the whole id on hover.
export function shortId(v) {
  if (typeof v !== 'string' || !UUID.test(v)) return String(v);
  return h('code', { class: 'id', title: v }, v.slice(0, 8));
}

export function bytes(n) {
  if (typeof n !== 'number') return n === null || n === undefined ? '—' : String(n);
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

// One value of an API row, shown by its kind.
export function value(key, v) {
  if (v === null || v === undefined || v === '') return h('span', { class: 'muted' }, '—');
  if (/(^|_)status$/.test(key)) return badge(v);
  if (isTimestamp(v)) return when(v);
  if (typeof v === 'string' && UUID.test(v)) return shortId(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  if (typeof v === 'object') {
    return h('ul', { class: 'attrs' }, Object.entries(v).map(([k, x]) => h('li', null, h('span', { class: 'muted' }, `${k}: `), value(k, x))));
  }
  if (/size|bytes/.test(key) && typeof v === 'number') return bytes(v);
  return String(v);
}

export function label(key) {
  const s = key.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// A definition list of an object's fields: the preferred ones first, in
// order, then any others the API returns.
export function kvList(dl, obj, preferred = [], hidden = []) {
  if (!obj) {
    dl.replaceChildren(h('p', { class: 'empty small' }, 'Not created yet.'));
    return;
  }
  const keys = [...preferred.filter((k) => k in obj),
    ...Object.keys(obj).filter((k) => !preferred.includes(k) && !hidden.includes(k))];
  dl.replaceChildren(...keys.flatMap((k) => [
    h('dt', null, label(k)),
    h('dd', { 'data-field': k }, value(k, obj[k])),
  ]));
}

// A table of rows with the given columns: [key, title, render?].
export function table(rows, columns, empty) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty small' }, empty);
  return h('table', { class: 'data' },
    h('thead', null, h('tr', null, columns.map(([, title]) => h('th', { scope: 'col' }, title)))),
    h('tbody', null, rows.map((row) => h('tr', null,
      columns.map(([key, , render]) => h('td', { 'data-col': key }, render ? render(row) : value(key, row[key])))))));
}

// Replace a container's content only when the data changed, so polling does
// not disturb scrolling, selection or focus.
export function renderIfChanged(el, data, render) {
  const key = JSON.stringify(data);
  if (el.dataset.rendered === key) return;
  el.dataset.rendered = key;
  render();
}
