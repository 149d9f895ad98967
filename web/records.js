// Events, sync logs and lineage records of every submission, newest first,
// a page at a time.  Each page after the first is asked for with the
// "next" position the page before it returned (keyset paging), so nothing
// is counted and a page costs the same however many rows there are: the
// pager says whether there is an older page, not how many.

import { h, $, badge, shortId, table, renderIfChanged } from './dom.js';

const PAGE_SIZE = 10;

function requestLink(row, onSelect) {
  if (!row.request_number) return shortId(row.submission_id);
  return h('button', { type: 'button', class: 'row-link', on: { click: () => onSelect(row.submission_id) } }, row.request_number);
}

function record(type, id) {
  return h('span', null, h('span', { class: 'layer-tag' }, type ?? ''), ' ', shortId(id));
}

const TABLES = [
  {
    name: 'events',
    fn: 'events',
    empty: 'No events yet.',
    columns: (onSelect) => [
      ['seq', '#'],
      ['request_number', 'Request', (r) => requestLink(r, onSelect)],
      ['event_type', 'Event type', (r) => h('code', null, r.event_type ?? '')],
      ['source_system', 'Source system'],
      ['event_status', 'Status', (r) => badge(r.event_status)],
      ['attempts', 'Attempts'],
      ['created_at', 'Created'],
      ['processed_at', 'Processed'],
    ],
  },
  {
    name: 'sync',
    fn: 'sync_logs',
    empty: 'No synchronization yet.',
    columns: (onSelect) => [
      ['created_at', 'When'],
      ['request_number', 'Request', (r) => requestLink(r, onSelect)],
      ['event_type', 'Event', (r) => h('code', null, r.event_type ?? '')],
      ['action', 'Action'],
      ['outcome', 'Outcome', (r) => badge(r.outcome)],
      ['message', 'Message'],
    ],
  },
  {
    name: 'lineage',
    fn: 'lineage',
    empty: 'No lineage recorded yet.',
    columns: (onSelect) => [
      ['created_at', 'Recorded'],
      ['request_number', 'Request', (r) => requestLink(r, onSelect)],
      ['from', 'From', (r) => record(r.from_type, r.from_id)],
      ['relationship', 'Relationship', (r) => h('span', { class: 'rel' }, `— ${r.relationship ?? ''} →`)],
      ['to', 'To', (r) => record(r.to_type, r.to_id)],
    ],
  },
];

class PagedTable {
  constructor(spec, onSelect, onPage) {
    this.spec = spec;
    this.columns = spec.columns(onSelect);
    // positions[i]: the keys that ask for page i (the first page needs none).
    this.positions = [{}];
    this.page = 0;
    this.next = null;
    $(`all-${spec.name}-newer`).addEventListener('click', () => {
      this.page = Math.max(0, this.page - 1);
      onPage();
    });
    $(`all-${spec.name}-older`).addEventListener('click', () => {
      if (!this.next) return;
      this.positions[this.page + 1] = this.next;
      this.page += 1;
      onPage();
    });
  }

  query() {
    return { limit: PAGE_SIZE, ...this.positions[this.page] };
  }

  render(result) {
    const items = result.items || [];
    this.next = result.next || null;
    const { name, empty } = this.spec;
    $(`all-${name}-page`).textContent = `page ${this.page + 1}`;
    $(`all-${name}-newer`).disabled = this.page === 0;
    $(`all-${name}-older`).disabled = !this.next;
    renderIfChanged($(`table-all-${name}`), items, () => $(`table-all-${name}`).replaceChildren(table(items, this.columns, empty)));
  }
}

export class RecordTables {
  constructor({ onSelect, onPage }) {
    this.tables = TABLES.map((spec) => new PagedTable(spec, onSelect, onPage));
  }

  // [rpc name, body] of each table's current page.
  queries() {
    return this.tables.map((t) => [t.spec.fn, t.query()]);
  }

  render(results) {
    this.tables.forEach((t, i) => t.render(results[i]));
  }
}
