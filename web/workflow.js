// The operational workflow panel: only the moves allowed from the case's
// current status (api.reference_data's transitions), a reason, and the
// operator's token.

import { h, $, badge } from './dom.js';
import * as auth from './auth.js';
import { rpc, describe } from './api.js';

export class Workflow {
  constructor({ onChanged }) {
    this.transitions = [];
    this.terminal = new Set();
    this.caseRow = null;
    this.onChanged = onChanged;
    this.busy = false;
    $('workflow-form').addEventListener('submit', (e) => { e.preventDefault(); this.apply(); });
    auth.onChange(() => this.render());
  }

  setReference(ref) {
    this.transitions = ref.transitions || [];
    this.terminal = new Set((ref.case_statuses || []).filter((c) => c.is_terminal).map((c) => c.status));
  }

  show(caseRow) {
    const before = this.caseRow && `${this.caseRow.id}/${this.caseRow.processing_status}`;
    if ((this.caseRow && this.caseRow.id) !== (caseRow && caseRow.id)) {
      // Another case: what was said or typed about the last one goes.
      $('workflow-note').textContent = '';
      $('workflow-note').className = 'small muted';
      $('workflow-reason').value = '';
    }
    this.caseRow = caseRow;
    if (before !== (caseRow && `${caseRow.id}/${caseRow.processing_status}`)) this.render();
  }

  render() {
    const c = this.caseRow;
    const signedIn = auth.claims();
    const options = $('workflow-options');
    if (!c) {
      $('workflow-state').replaceChildren('No operational case yet: the worker opens one once the request is integrated.');
      options.replaceChildren();
      $('workflow-form').hidden = true;
      return;
    }
    const moves = this.transitions.filter((t) => t.from_status === c.processing_status).map((t) => t.to_status);
    $('workflow-state').replaceChildren('Case ', h('code', null, c.external_reference ?? ''), ' is ', badge(c.processing_status),
      moves.length === 0 ? ` — ${this.terminal.has(c.processing_status) ? 'a terminal status' : 'no move is allowed from here'}.` : '.');
    $('workflow-form').hidden = moves.length === 0;
    const checked = options.querySelector('input:checked');
    options.replaceChildren(...moves.map((to, i) => h('label', { class: 'move-option' },
      h('input', { type: 'radio', name: 'new_status', value: to, checked: (checked ? checked.value === to : i === 0) || undefined }),
      badge(to))));
    const canAct = Boolean(signedIn);
    $('workflow-submit').disabled = !canAct || this.busy;
    $('workflow-reason').disabled = !canAct;
    options.querySelectorAll('input').forEach((i) => { i.disabled = !canAct; });
    if (!canAct && moves.length) $('workflow-note').textContent = 'Sign in with an operator token to move this case.';
    else if ($('workflow-note').dataset.kind === 'hint') $('workflow-note').textContent = '';
    $('workflow-note').dataset.kind = canAct ? '' : 'hint';
  }

  async apply() {
    const c = this.caseRow;
    const choice = $('workflow-options').querySelector('input:checked');
    if (!c || !choice || this.busy) return;
    const note = $('workflow-note');
    const body = { case_id: c.id, new_status: choice.value };
    const reason = $('workflow-reason').value.trim();
    if (reason) body.reason = reason;
    this.busy = true;
    $('workflow-submit').disabled = true;
    note.className = 'small muted';
    note.textContent = `Moving ${c.external_reference} to ${choice.value}…`;
    try {
      const r = await rpc('set_case_status', body);
      note.className = 'small ok';
      note.textContent = `${r.external_reference ?? c.external_reference}: ${r.previous_status ?? c.processing_status} → ${r.processing_status} by ${r.changed_by ?? 'you'}. The canonical object follows once the worker syncs.`;
      $('workflow-reason').value = '';
      this.caseRow = { ...c, processing_status: r.processing_status };
    } catch (e) {
      note.className = 'small error';
      note.textContent = describe(e);
    } finally {
      this.busy = false;
      this.render();
      this.onChanged();
    }
  }
}
