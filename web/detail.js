// The selected submission in every layer: the status row, the lineage
// picture, one card per record, and the audit tables.

import { h, $, badge, when, bytes, shortId, kvList, table, renderIfChanged } from './dom.js';
import { renderLineage } from './lineage.js';
import * as auth from './auth.js';
import { rpc, describe } from './api.js';

const REPLAYABLE = new Set(['dead_letter', 'failed', 'skipped']);
const REPLAY_ROLES = new Set(['lab_operator', 'lab_admin']);

const INTAKE_FIELDS = ['submission_id', 'submission_status', 'created_at', 'intake_method', 'requester_name', 'requester_email',
  'customer_name', 'customer_code', 'agreement_number', 'request_type', 'priority', 'assigned_team', 'request_description', 'submitted_by'];
const INTAKE_HIDDEN = ['customer_id', 'agreement_id', 'updated_at'];
const SOURCE_FIELDS = ['request_number', 'lifecycle_status', 'source_system', 'summary', 'request_type_code', 'priority_code', 'team_code', 'created_at', 'integrated_at', 'id'];
const SOURCE_HIDDEN = ['submission_id', 'customer_id', 'agreement_id', 'updated_at'];
const CASE_FIELDS = ['external_reference', 'processing_status', 'team_code', 'priority_code', 'request_type_code', 'status_changed_by', 'status_change_reason', 'status_changed_at', 'opened_at', 'id'];
const CASE_HIDDEN = ['submission_id', 'service_request_id', 'updated_at'];
const CANONICAL_FIELDS = ['lifecycle_status', 'object_type', 'canonical_category', 'source_system', 'source_reference', 'last_event_seq', 'created_at', 'updated_at', 'id', 'attributes'];
const CANONICAL_HIDDEN = ['submission_id'];

// Only http(s) links are offered for download.
function safeUrl(raw) {
  // null (no link for this caller, or no stored object) would resolve to "<base>/null"
  if (typeof raw !== 'string' || raw === '') return null;
  try {
    const u = new URL(raw, document.baseURI);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch { return null; }
}

function statusRow(d) {
  const sub = d.submission || {};
  const items = [
    ['intake', sub.submission_status],
    ['source', d.service_request && d.service_request.lifecycle_status],
    ['case', d.case && d.case.processing_status],
    ['canonical', d.canonical && d.canonical.lifecycle_status],
  ];
  return [
    h('span', { class: 'req-number' }, (d.service_request && d.service_request.request_number) || 'request'),
    ...items.map(([layer, st]) => h('span', { class: 'layer-status', 'data-layer': layer }, h('span', { class: 'muted small' }, layer), badge(st))),
  ];
}

// Operators put a dead-lettered, failed or skipped event back to pending.
async function replay(event, onChanged) {
  const note = $('events-note');
  note.className = 'small muted';
  note.textContent = `Replaying event #${event.seq}…`;
  try {
    await rpc('replay_event', { event_id: event.id });
    note.className = 'small ok';
    note.textContent = `Event #${event.seq} (${event.event_type}) is pending again; a worker picks it up now.`;
  } catch (e) {
    note.className = 'small error';
    note.textContent = describe(e);
  }
  onChanged();
}

function eventAction(row, onChanged) {
  const c = auth.claims();
  if (!REPLAYABLE.has(row.event_status) || !c || !REPLAY_ROLES.has(c.role)) return '';
  return h('button', {
    type: 'button', class: 'btn btn-small', 'aria-label': `Replay event #${row.seq}`,
    on: { click: (e) => { e.currentTarget.disabled = true; replay(row, onChanged); } },
  }, 'Replay');
}

export function renderDetail(d, onChanged) {
  $('detail-empty').hidden = true;
  $('detail-body').hidden = false;

  renderIfChanged($('detail-status'), [d.submission, d.service_request, d.case, d.canonical], () => {
    $('detail-status').replaceChildren(...statusRow(d));
  });
  // Presigned links differ on every call: redraw for a new document, or to
  // renew links every ten minutes, not on every refresh.
  const documentsKey = [(d.documents || []).map(({ download_url: _, ...doc }) => doc), Math.floor(Date.now() / 600000)];
  renderIfChanged($('lineage-graph'), [d.submission, d.service_request, d.case, d.canonical, d.events, d.lineage, documentsKey[0]], () => {
    renderLineage($('lineage-graph'), d);
  });
  if (!$('lineage-graph').dataset.wired) {
    // A box of the picture leads to the card or table with its record.
    $('lineage-graph').dataset.wired = 'yes';
    $('lineage-graph').addEventListener('click', (e) => {
      const box = e.target.closest('[data-target]');
      if (box) $(box.dataset.target).scrollIntoView({ behavior: 'smooth', block: 'center' });
    });
  }

  const sub = d.submission ? { ...d.submission } : null;
  renderIfChanged($('card-intake'), sub, () => kvList($('card-intake'), sub, INTAKE_FIELDS, INTAKE_HIDDEN));
  renderIfChanged($('card-source'), d.service_request, () => kvList($('card-source'), d.service_request, SOURCE_FIELDS, SOURCE_HIDDEN));
  renderIfChanged($('card-case'), d.case, () => kvList($('card-case'), d.case, CASE_FIELDS, CASE_HIDDEN));
  renderIfChanged($('card-canonical'), d.canonical, () => kvList($('card-canonical'), d.canonical, CANONICAL_FIELDS, CANONICAL_HIDDEN));

  renderIfChanged($('table-documents'), documentsKey, () => $('table-documents').replaceChildren(table(d.documents, [
    ['file_name', 'File', (r) => h('span', { class: 'file-name' }, r.file_name ?? r.original_file_name ?? '')],
    ['document_type', 'Document type', (r) => r.document_type ?? '—'],
    ['content_type', 'Content type', (r) => r.content_type ?? '—'],
    ['size_bytes', 'Size', (r) => bytes(r.size_bytes ?? r.size ?? r.byte_size)],
    ['sha256', 'SHA-256', (r) => { const sum = r.sha256 ?? r.checksum_sha256 ?? r.checksum; return sum ? h('code', { class: 'id', title: sum }, `${String(sum).slice(0, 12)}…`) : '—'; }],
    ['id', 'Document id', (r) => h('code', { class: 'id' }, r.id ?? '')],
    // Where the bytes are: the bucket and the object's key in it.
    ['storage_key', 'Storage key', (r) => (r.object_key ? h('code', { class: 'storage-key' }, `${r.bucket}/${r.object_key}`) : '—')],
    ['status', 'Status', (r) => badge(r.status ?? r.upload_status ?? null)],
    ['uploaded_at', 'Stored', (r) => when(r.uploaded_at ?? r.created_at)],
    ['download_url', 'Download', (r) => {
      const url = safeUrl(r.download_url);
      return url ? h('a', { href: url, class: 'download', rel: 'noopener noreferrer', target: '_blank', download: r.file_name ?? '' }, 'Download') : '—';
    }],
  ], 'No documents attached.')));

  renderIfChanged($('table-history'), d.status_history, () => $('table-history').replaceChildren(table(d.status_history, [
    ['changed_at', 'When'],
    ['move', 'Move', (r) => h('span', { class: 'move' }, badge(r.previous_status), ' → ', badge(r.new_status))],
    ['changed_by', 'By'],
    ['change_reason', 'Reason'],
  ], 'No case status changes yet.')));

  const role = (auth.claims() || {}).role || null;
  renderIfChanged($('table-events'), [d.events, role], () => $('table-events').replaceChildren(table(d.events, [
    ['seq', '#'],
    ['event_type', 'Type', (r) => h('code', null, r.event_type ?? '')],
    ['event_status', 'Status'],
    ['attempts', 'Attempts'],
    ['created_at', 'Created'],
    ['processed_at', 'Processed'],
    ['latency', 'Latency', (r) => {
      if (!r.processed_at || !r.created_at) return '—';
      const ms = new Date(r.processed_at) - new Date(r.created_at);
      return Number.isFinite(ms) ? `${ms} ms` : '—';
    }],
    ['last_error', 'Last error'],
    ['action', h('span', { class: 'sr-only' }, 'Action'), (r) => eventAction(r, onChanged)],
  ], 'No events.')));

  renderIfChanged($('table-sync'), d.sync_logs, () => $('table-sync').replaceChildren(table(d.sync_logs, [
    ['created_at', 'When'],
    ['event_type', 'Event', (r) => h('code', null, r.event_type ?? '')],
    ['action', 'Action'],
    ['outcome', 'Outcome', (r) => badge(r.outcome)],
    ['message', 'Message'],
    ['attempt', 'Attempt'],
  ], 'No synchronization yet.')));

  renderIfChanged($('table-deliveries'), d.deliveries, () => $('table-deliveries').replaceChildren(table(d.deliveries, [
    ['subscription_name', 'Subscription'],
    ['event_type', 'Event', (r) => h('code', null, r.event_type ?? '')],
    ['status', 'Status', (r) => badge(r.status)],
    ['attempts', 'Attempts'],
    ['last_http_status', 'HTTP'],
    ['last_error', 'Last error'],
    ['delivered_at', 'Delivered'],
  ], 'No webhook deliveries.')));

  renderIfChanged($('table-lineage'), d.lineage, () => $('table-lineage').replaceChildren(table(d.lineage, [
    ['from', 'From', (r) => h('span', null, h('span', { class: 'layer-tag' }, r.from_type ?? ''), ' ', shortId(r.from_id))],
    ['relationship', 'Relationship', (r) => h('span', { class: 'rel' }, `— ${r.relationship ?? ''} →`)],
    ['to', 'To', (r) => h('span', null, h('span', { class: 'layer-tag' }, r.to_type ?? ''), ' ', shortId(r.to_id))],
    ['created_at', 'Recorded'],
  ], 'No lineage recorded yet.')));
}

export function clearDetail(message) {
  $('detail-empty').textContent = message;
  $('detail-empty').hidden = false;
  $('detail-body').hidden = true;
  $('detail-status').replaceChildren();
  $('events-note').textContent = '';
  for (const id of ['detail-status', 'lineage-graph', 'card-intake', 'card-source', 'card-case', 'card-canonical',
    'table-documents', 'table-history', 'table-events', 'table-sync', 'table-deliveries', 'table-lineage']) delete $(id).dataset.rendered;
}

