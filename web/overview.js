// Overview: rows per status in each layer, and the event queue's health.

import { h, $, badge, renderIfChanged } from './dom.js';

const LAYERS = [
  ['source_system', 'Source requests', 'source_system.service_requests'],
  ['integration', 'Integration events', 'integration.events'],
  ['operational', 'Operational cases', 'operational.operation_cases'],
  ['canonical', 'Canonical objects', 'canonical.business_objects'],
];

const ORDER = ['received', 'pending', 'failed', 'integrated', 'open', 'active', 'in_progress', 'completed', 'rejected', 'dead_letter', 'skipped'];
const rank = (status) => { const i = ORDER.indexOf(status); return i < 0 ? ORDER.length : i; };

const QUEUE = [
  ['pending_events', 'Pending events', 'waiting for a worker or a retry'],
  ['retrying_events', 'Retrying', 'failed, next attempt scheduled'],
  ['dead_letters', 'Dead letters', 'gave up; replay to continue'],
  ['held_submissions', 'Held requests', 'waiting behind a dead letter'],
  ['oldest_pending_age_seconds', 'Oldest pending', 'queue lag'],
  ['completed_last_minute', 'Completed / min', 'throughput'],
  ['workers_running', 'Workers', 'background workers running'],
];

function seconds(v) {
  if (v === null || v === undefined) return '—';
  const n = Number(v);
  return n < 1 ? `${Math.round(n * 1000)} ms` : n < 120 ? `${n.toFixed(1)} s` : `${Math.round(n / 60)} min`;
}

export function renderOverview(metrics) {
  const counts = metrics.status_counts || [];
  renderIfChanged($('layer-counts'), counts, () => {
    $('layer-counts').replaceChildren(...LAYERS.map(([layer, title, table]) => {
      const rows = counts.filter((c) => c.layer === layer).sort((a, b) => rank(a.status) - rank(b.status));
      const total = rows.reduce((n, r) => n + Number(r.count), 0);
      return h('article', { class: 'layer-card', 'data-layer': layer },
        h('header', null,
          h('h3', null, title),
          h('span', { class: 'layer-total', 'aria-label': `${total} rows` }, String(total))),
        h('p', { class: 'muted small' }, h('code', null, table)),
        h('div', { class: 'bar', 'aria-hidden': 'true' }, rows.map((r) => {
          const seg = h('span', { class: 'bar-seg', 'data-status': r.status, title: `${r.status}: ${r.count}` });
          seg.style.flexGrow = String(r.count);
          return seg;
        })),
        rows.length
          ? h('ul', { class: 'count-list' }, rows.map((r) => h('li', { 'data-status': r.status }, badge(r.status), h('span', { class: 'count' }, String(r.count)))))
          : h('p', { class: 'empty small' }, 'no rows yet'));
    }));
  });

  const p = metrics.processing || {};
  renderIfChanged($('queue-metrics'), p, () => {
    $('queue-metrics').replaceChildren(...QUEUE.filter(([k]) => k in p).map(([key, title, help]) => {
      const v = key === 'oldest_pending_age_seconds' ? seconds(p[key]) : String(p[key] ?? '—');
      const alarm = (key === 'dead_letters' || key === 'held_submissions') && Number(p[key]) > 0;
      const idle = key === 'workers_running' && Number(p[key]) === 0;
      return h('div', { class: `metric${alarm ? ' metric-alarm' : ''}${idle ? ' metric-warn' : ''}`, 'data-metric': key },
        h('dt', { title: help }, title), h('dd', null, v));
    }));
  });
}

// Case statuses come from the database, with their descriptions.
export function renderCaseLegend(caseStatuses) {
  $('case-status-legend').replaceChildren(...(caseStatuses || []).flatMap((cs) => [
    h('dt', null, badge(cs.status)),
    h('dd', null, `Case: ${cs.description || ''}`),
  ]));
}
