// The selected request's lineage as a picture: intake → source request →
// RequestCreated event → operational case → canonical object, with the
// documents below the source request and the case's status-change events
// below the case, each feeding the canonical object.  Boxes are coloured by status; records that do not exist yet are
// dashed.  Built with createElementNS only.

import { s } from './dom.js';

const W = 158, H = 62, GAP_X = 84, GAP_Y = 18, PAD = 14;
const MAX_EVENTS_PER_COLUMN = 5;

function clip(text, n) {
  text = String(text ?? '');
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function node(p, { kind, title, status, id, missing, target }) {
  const g = s('g', {
    class: `lin-node${missing ? ' lin-missing' : ''}`,
    'data-kind': kind, 'data-status': missing ? 'absent' : (status || 'none'),
    transform: `translate(${p.x} ${p.y})`,
  });
  if (target) g.dataset.target = target;
  g.append(
    s('title', null, `${kind}${title ? `: ${title}` : ''}${status ? ` (${status})` : ''}${id ? ` · ${id}` : ''}`),
    s('rect', { class: 'lin-box', width: W, height: H, rx: 8 }),
    s('rect', { class: 'lin-stripe', width: 6, height: H, rx: 3 }),
    s('text', { class: 'lin-kind', x: 16, y: 18 }, kind),
    s('text', { class: 'lin-title', x: 16, y: 37 }, clip(title || (missing ? 'not created yet' : ''), 19)),
    s('text', { class: 'lin-status', x: 16, y: 54 }, missing ? 'waiting for the worker' : clip(status, 21)),
  );
  return g;
}

// Left-to-right curve from the right side of one box to the left of another.
function edge(from, to, label, dashed) {
  const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
  const mx = (x1 + x2) / 2;
  const g = s('g', { class: `lin-edge${dashed ? ' lin-edge-missing' : ''}` });
  g.append(s('path', { d: `M${x1} ${y1} C${mx} ${y1} ${mx} ${y2} ${x2 - 2} ${y2}`, 'marker-end': 'url(#lin-arrow)' }));
  if (label) g.append(s('text', { class: 'lin-edge-label', x: mx, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, label.replace(/_/g, ' ')));
  return g;
}

// Top-to-bottom line from one box to the box under it.
function drop(from, to, label, dashed) {
  const x = from.x + W / 2, y1 = from.y + H, y2 = to.y;
  const g = s('g', { class: `lin-edge${dashed ? ' lin-edge-missing' : ''}` });
  g.append(s('path', { d: `M${x} ${y1} L${x} ${y2 - 2}`, 'marker-end': 'url(#lin-arrow)' }));
  if (label) g.append(s('text', { class: 'lin-edge-label', x: x + 6, y: (y1 + y2) / 2 + 4 }, label.replace(/_/g, ' ')));
  return g;
}

function relationship(lineage, fromType, toType) {
  const rec = (lineage || []).find((l) => l.from_type === fromType && l.to_type === toType);
  return rec ? rec.relationship : null;
}

export function renderLineage(container, detail) {
  const sub = detail.submission || {};
  const sr = detail.service_request;
  const oc = detail.case;
  const bo = detail.canonical;
  const all = detail.events || [];
  const isCaseEvent = (e) => e.aggregate_type === 'operation_case' || e.event_type === 'OperationalCaseStatusChanged';
  const requestEvents = all.filter((e) => !isCaseEvent(e)).slice(0, MAX_EVENTS_PER_COLUMN);
  const caseEvents = all.filter(isCaseEvent).slice(-MAX_EVENTS_PER_COLUMN);
  const documents = (detail.documents || []).slice(0, MAX_EVENTS_PER_COLUMN);

  const rows = Math.max(1, requestEvents.length, 1 + caseEvents.length, 1 + documents.length);
  const col = (i) => PAD + i * (W + GAP_X);
  const row = (i) => PAD + i * (H + GAP_Y);
  const width = col(5) - GAP_X + PAD;
  const height = row(rows) - GAP_Y + PAD;

  const pos = { intake: { x: col(0), y: row(0) }, source: { x: col(1), y: row(0) }, case: { x: col(3), y: row(0) }, canonical: { x: col(4), y: row(0) } };

  const svg = s('svg', {
    class: 'lineage', viewBox: `0 0 ${width} ${height}`, role: 'img', width, height,
    'aria-label': `Lineage: submission ${sub.submission_status || ''}; service request ${sr ? `${sr.request_number} ${sr.lifecycle_status}` : 'not created'}; `
      + `${all.length} events; case ${oc ? oc.processing_status : 'not opened'}; canonical object ${bo ? bo.lifecycle_status : 'not created'}.`,
  });
  svg.append(s('defs', null,
    s('marker', { id: 'lin-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0 0L10 5L0 10z', class: 'lin-arrow' }))));
  const edges = s('g', { class: 'lin-edges' });
  const nodes = s('g', { class: 'lin-nodes' });
  svg.append(edges, nodes);

  nodes.append(node(pos.intake, { kind: 'intake submission', title: sub.requester_name || sub.intake_method, status: sub.submission_status, id: sub.submission_id, target: 'card-intake' }));
  nodes.append(node(pos.source, { kind: 'source request', title: sr && sr.request_number, status: sr && sr.lifecycle_status, id: sr && sr.id, missing: !sr, target: 'card-source' }));
  edges.append(edge(pos.intake, pos.source, 'creates', !sr));

  let aboveDoc = pos.source;
  documents.forEach((doc, i) => {
    const p = { x: col(1), y: row(i + 1) };
    nodes.append(node(p, { kind: 'document', title: doc.original_file_name ?? doc.file_name, status: doc.status, id: doc.id, target: 'table-documents' }));
    edges.append(drop(aboveDoc, p, i === 0 ? relationship(detail.lineage, 'service_request', 'document') || 'attached' : null, false));
    aboveDoc = p;
  });

  if (requestEvents.length === 0) {
    const p = { x: col(2), y: row(0) };
    nodes.append(node(p, { kind: 'integration event', missing: true }));
    edges.append(edge(pos.source, p, 'publishes', true), edge(p, pos.case, null, true));
  }
  requestEvents.forEach((e, i) => {
    const p = { x: col(2), y: row(i) };
    nodes.append(node(p, { kind: `event #${e.seq ?? i + 1}`, title: e.event_type, status: e.event_status, id: e.id, target: 'table-events' }));
    edges.append(edge(pos.source, p, i === 0 ? 'publishes' : null, false));
    if (e.event_type === 'RequestCreated') {
      edges.append(edge(p, pos.case, relationship(detail.lineage, 'service_request', 'operation_case') || 'opens', !oc));
    }
  });

  nodes.append(node(pos.case, { kind: 'operational case', title: oc && oc.external_reference, status: oc && oc.processing_status, id: oc && oc.id, missing: !oc, target: 'card-case' }));
  nodes.append(node(pos.canonical, { kind: 'canonical object', title: bo && (bo.canonical_category || bo.object_type), status: bo && bo.lifecycle_status, id: bo && bo.id, missing: !bo, target: 'card-canonical' }));
  edges.append(edge(pos.case, pos.canonical, relationship(detail.lineage, 'operation_case', 'business_object') || 'maps to', !bo));

  let above = pos.case;
  caseEvents.forEach((e, i) => {
    const p = { x: col(3), y: row(i + 1) };
    const to = e.payload && e.payload.new_status;
    nodes.append(node(p, { kind: `event #${e.seq ?? ''}`, title: to ? `case → ${to}` : e.event_type, status: e.event_status, id: e.id, target: 'table-events' }));
    edges.append(drop(above, p, i === 0 ? 'status change' : null, false));
    edges.append(edge(p, pos.canonical, i === caseEvents.length - 1 ? 'syncs' : null, e.event_status !== 'completed'));
    above = p;
  });

  container.replaceChildren(svg);
}
