// The submission list: filters (status, team, text), newest first, paged.

import { h, $, badge, ago, renderIfChanged } from './dom.js';
import config from './config.js';

// Statuses of the layers a row shows (source request, case, canonical object).
const STATUSES = ['received', 'integrated', 'failed', 'open', 'active', 'in_progress', 'completed', 'rejected'];

export class SubmissionList {
  constructor({ onSelect, onFilterChange }) {
    this.filter = { status: '', team: '', q: '' };
    this.offset = 0;
    this.total = 0;
    this.selected = null;
    this.onSelect = onSelect;
    this.onFilterChange = onFilterChange;

    $('filter-status').append(...STATUSES.map((st) => h('option', { value: st }, st)));
    let timer = null;
    const changed = () => { this.offset = 0; this.onFilterChange(); };
    $('filter-status').addEventListener('change', (e) => { this.filter.status = e.target.value; changed(); });
    $('filter-team').addEventListener('change', (e) => { this.filter.team = e.target.value; changed(); });
    $('filter-q').addEventListener('input', (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.filter.q = e.target.value.trim(); changed(); }, 300);
    });
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('page-prev').addEventListener('click', () => { this.offset = Math.max(0, this.offset - config.pageSize); this.onFilterChange(); });
    $('page-next').addEventListener('click', () => { this.offset += config.pageSize; this.onFilterChange(); });
  }

  setTeams(teams) {
    $('filter-team').append(...teams.map((t) => h('option', { value: t.code }, t.name)));
  }

  query() {
    const q = { limit: config.pageSize, offset: this.offset };
    for (const [k, v] of Object.entries(this.filter)) if (v) q[k] = v;
    return q;
  }

  select(id) {
    this.selected = id;
    for (const tr of $('submission-table').tBodies[0].rows) {
      const on = tr.dataset.id === id;
      tr.classList.toggle('selected', on);
      if (on) tr.setAttribute('aria-current', 'true'); else tr.removeAttribute('aria-current');
    }
  }

  render(result) {
    this.total = result.total ?? 0;
    const items = result.items || [];
    const from = items.length ? this.offset + 1 : 0;
    $('list-count').textContent = `${this.total} total`;
    $('page-label').textContent = items.length ? `${from}–${this.offset + items.length} of ${this.total}` : 'no submissions';
    $('page-prev').disabled = this.offset === 0;
    $('page-next').disabled = this.offset + items.length >= this.total;

    const body = $('submission-table').tBodies[0];
    renderIfChanged(body, { items, selected: this.selected }, () => {
      if (items.length === 0) {
        body.replaceChildren(h('tr', null, h('td', { colspan: 3, class: 'empty' }, 'No submission matches these filters.')));
        return;
      }
      body.replaceChildren(...items.map((it) => {
        const open = () => this.onSelect(it.submission_id);
        const flags = [];
        if (Number(it.unfinished_events) > 0) flags.push(h('span', { class: 'flag flag-busy', title: 'events waiting for a worker' }, `${it.unfinished_events} pending`));
        if (Number(it.dead_letters) > 0) flags.push(h('span', { class: 'flag flag-dead', title: 'dead-lettered events' }, `${it.dead_letters} dead`));
        const tr = h('tr', {
          'data-id': it.submission_id,
          class: it.submission_id === this.selected ? 'selected' : null,
          'aria-current': it.submission_id === this.selected ? 'true' : null,
        },
        h('td', null,
          h('button', { type: 'button', class: 'row-link', on: { click: open } }, it.request_number || 'not numbered yet'),
          h('div', { class: 'small truncate' }, it.requester_name ?? ''),
          it.requester_email ? h('div', { class: 'muted small truncate', title: it.requester_email }, it.requester_email) : null,
          h('div', { class: 'muted small', title: it.submitted_at }, ago(it.submitted_at))),
        h('td', null,
          h('div', { class: 'truncate' }, it.customer_name ?? ''),
          h('div', { class: 'muted small' }, `${it.request_type ?? ''} · ${it.priority ?? ''} · ${it.team ?? ''}`), flags),
        h('td', null, h('div', { class: 'pipeline', 'aria-label': `source ${it.source_status ?? 'none'}, case ${it.case_status ?? 'none'}, canonical ${it.canonical_status ?? 'none'}` },
          h('span', { 'data-layer': 'source', title: 'source request' }, badge(it.source_status)),
          h('span', { 'data-layer': 'case', title: 'operational case' }, badge(it.case_status)),
          h('span', { 'data-layer': 'canonical', title: 'canonical object' }, badge(it.canonical_status)))));
        tr.addEventListener('click', (e) => { if (e.target.closest('button') === null) open(); });
        return tr;
      }));
    });
  }
}
