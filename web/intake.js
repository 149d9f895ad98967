// The intake form: reference-data dropdowns (active customers only, and the
// chosen customer's agreements that are valid today), an optional document
// with its document type sent as base64, and the server's validation errors
// shown next to the field they name.

import { h, $ } from './dom.js';
import { rpc, describe } from './api.js';

const FIELDS = ['requester_name', 'requester_email', 'customer_id', 'agreement_id', 'request_type', 'priority', 'team', 'description', 'document_type', 'document'];

// Names the database may use for a form field (a column, or a key of the
// request body); the first one a message mentions decides the field.
const ALIASES = [
  [/\bdocument_type\b/, 'document_type'],
  [/\bdocument\b|\bfile_name\b|\bcontent_type\b|\bcontent_base64\b|\bfile\b/, 'document'],
  [/\brequester_name\b/, 'requester_name'],
  [/\brequester_email\b|\be-?mail\b/, 'requester_email'],
  [/\b(request_)?description\b/, 'description'],
  [/\brequest_type(_code)?\b|\brequest type\b/, 'request_type'],
  [/\bpriority(_code)?\b/, 'priority'],
  [/\b(assigned_)?team(_code)?\b/, 'team'],
  [/\bagreement(_id)?\b/, 'agreement_id'],
  [/\bcustomer(_id)?\b/, 'customer_id'],
];

export function fieldOf(error) {
  for (const candidate of [error.column, error.message]) {
    if (!candidate) continue;
    let best = null;
    for (const [re, field] of ALIASES) {
      const m = re.exec(String(candidate));
      if (m && (best === null || m.index < best.index)) best = { index: m.index, field };
    }
    if (best) return best.field;
  }
  return null;
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

const CONTENT_TYPES = { pdf: 'application/pdf', txt: 'text/plain', csv: 'text/csv', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg' };

export class IntakeForm {
  constructor({ onSubmitted }) {
    this.customers = [];
    this.onSubmitted = onSubmitted;
    this.form = $('intake-form');
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    $('f-customer_id').addEventListener('change', () => this.fillAgreements());
    for (const f of FIELDS) {
      const input = $(`f-${f}`);
      input.addEventListener(input.tagName === 'SELECT' || input.type === 'file' ? 'change' : 'input', () => this.clearError(f));
    }
  }

  setReference(ref) {
    // The server refuses the others (inactive customers, agreements not
    // valid today); they are not offered.
    this.customers = (ref.customers || []).filter((c) => c.status === 'active');
    const option = (value, text, disabled) => h('option', { value, disabled: disabled || undefined }, text);
    $('f-customer_id').replaceChildren(option('', 'Choose a customer…'),
      ...this.customers.map((c) => option(c.id, `${c.name} (${c.code})`)));
    $('f-request_type').replaceChildren(option('', 'Choose a type…'), ...(ref.request_types || []).map((t) => option(t.code, t.name)));
    $('f-priority').replaceChildren(...(ref.priorities || []).map((p) => option(p.code, p.name)));
    const medium = (ref.priorities || []).find((p) => p.code === 'medium');
    if (medium) $('f-priority').value = 'medium';
    $('f-team').replaceChildren(option('', 'Choose a team…'), ...(ref.teams || []).map((t) => option(t.code, t.name)));
    const types = ref.document_types || {};
    $('f-document_type').replaceChildren(...(types.types || []).map((t) => h('option', { value: t.code, title: t.description || '' }, t.name)));
    if (types.extensions) {
      $('f-document').setAttribute('accept', types.extensions.map((x) => `.${x}`).join(','));
      $('doc-hint').textContent = `${types.extensions.join(', ')}${types.max_size ? `; up to ${Math.round(types.max_size / 1048576)} MB` : ''}.`;
    }
    this.fillAgreements();
  }

  fillAgreements() {
    const customer = this.customers.find((c) => c.id === $('f-customer_id').value);
    const agreements = customer ? (customer.agreements || []).filter((a) => a.current) : [];
    $('f-agreement_id').replaceChildren(
      h('option', { value: '' }, customer ? (agreements.length ? 'No agreement' : 'No agreement valid today') : 'Choose a customer first'),
      ...agreements.map((a) => h('option', { value: a.id },
        `${a.agreement_number} · ${a.name}${a.valid_to ? ` · until ${a.valid_to}` : ''}`)));
    $('f-agreement_id').disabled = !customer;
  }

  clearError(field) {
    $(`err-${field}`).textContent = '';
    $(`f-${field}`).removeAttribute('aria-invalid');
  }

  clearErrors() {
    FIELDS.forEach((f) => this.clearError(f));
    $('err-form').textContent = '';
  }

  showError(e) {
    const field = fieldOf(e);
    const text = describe(e);
    if (field) {
      $(`err-${field}`).textContent = text;
      $(`f-${field}`).setAttribute('aria-invalid', 'true');
      $(`f-${field}`).focus();
    } else {
      $('err-form').textContent = text;
    }
  }

  async body() {
    const v = (name) => $(`f-${name}`).value.trim();
    const body = {
      requester_name: v('requester_name'),
      requester_email: v('requester_email'),
      description: $('f-description').value,
      request_type: v('request_type'),
      priority: v('priority'),
      team: v('team'),
      customer_id: v('customer_id') || null,
      intake_method: 'portal',
    };
    if (v('agreement_id')) body.agreement_id = v('agreement_id');
    const file = $('f-document').files[0];
    if (file) {
      const ext = (file.name.split('.').pop() || '').toLowerCase();
      body.document = { file_name: file.name, content_type: file.type || CONTENT_TYPES[ext] || 'application/octet-stream', content_base64: await readBase64(file) };
      if (v('document_type')) body.document.document_type = v('document_type');
    }
    return body;
  }

  async submit() {
    this.clearErrors();
    const button = $('intake-submit');
    button.disabled = true;
    $('intake-result').textContent = 'Submitting…';
    try {
      const r = await rpc('submit_request', await this.body());
      $('intake-result').textContent = `Submitted ${r.request_number}${r.document_id ? ' with its document' : ''}. Watch it move through the layers on the right.`;
      $('f-description').value = '';
      $('f-document').value = '';
      this.onSubmitted(r);
    } catch (e) {
      $('intake-result').textContent = '';
      this.showError(e);
    } finally {
      button.disabled = false;
    }
  }
}
