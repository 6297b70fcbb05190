// A fake of the host side of 'arbor:lm/lm@0.1.0' for the SDK's unit tests:
// it records every call in `calls`, answers reads from `answers`, and throws
// errors shaped like the bindings' ComponentError (own property `payload`).

/** Every call made, as [method, stateId, ...args]. */
export const calls = [];
/** Results that reads return: `variable` by name, `choice` by name. */
export const answers = { variable: {}, choice: {}, text: '', tokenCount: 0 };
/** When set, the next call on a state throws this WIT error variant. */
export const failNext = { variant: undefined };

let next = 0;

class ComponentError extends Error {
  constructor(value) {
    super(`${String(value)} (see error.payload)`);
    Object.defineProperty(this, 'payload', { value, enumerable: true });
  }
}

function maybeFail() {
  const v = failNext.variant;
  if (v !== undefined) {
    failNext.variant = undefined;
    throw new ComponentError(v);
  }
}

export function reset() {
  calls.length = 0;
  next = 0;
  answers.variable = {};
  answers.choice = {};
  failNext.variant = undefined;
}

export class State {
  constructor(id) {
    this.id = id;
  }
  static create() {
    maybeFail();
    const s = new State(next++);
    calls.push(['create', s.id]);
    return s;
  }
  append(text) { maybeFail(); calls.push(['append', this.id, text]); }
  appendMessage(role, content) { maybeFail(); calls.push(['appendMessage', this.id, role, content]); }
  beginMessage(role) { maybeFail(); calls.push(['beginMessage', this.id, role]); }
  endMessage() { maybeFail(); calls.push(['endMessage', this.id]); }
  generate(name, options) { maybeFail(); calls.push(['generate', this.id, name, options]); }
  select(name, choices) { maybeFail(); calls.push(['select', this.id, name, choices]); }
  fork(n) {
    maybeFail();
    const out = [];
    for (let i = 0; i < n; i++) out.push(new State(next++));
    calls.push(['fork', this.id, n, out.map((s) => s.id)]);
    return out;
  }
  text() { maybeFail(); calls.push(['text', this.id]); return answers.text; }
  variable(name) {
    maybeFail();
    calls.push(['variable', this.id, name]);
    const v = answers.variable[name];
    return typeof v === 'function' ? v(this.id) : v;
  }
  choice(name) { maybeFail(); calls.push(['choice', this.id, name]); return answers.choice[name]; }
  tokenCount() { maybeFail(); calls.push(['tokenCount', this.id]); return answers.tokenCount; }
  [Symbol.dispose ?? Symbol.for('dispose')]() { calls.push(['drop', this.id]); }
}

export function join(states) {
  maybeFail();
  calls.push(['join', states.map((s) => s.id)]);
}
