// JSON extraction: the model fills a record from free text, constrained by a
// JSON Schema so the output always parses. Mirrors examples/json-extract
// (Rust) call for call.
import { State, Gen, JsonError, trim } from 'arbor';

// Gen.jsonSchema serialises this like serde_json::Value (keys sorted,
// compact), so the host receives the same bytes as from the Rust example.
// Exported for the SDK's tests; the component exports only `run`.
export const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    city: { type: 'string', maxLength: 40 },
  },
  required: ['name', 'age', 'city'],
  additionalProperties: false,
};

export function run(text) {
  const s = new State();
  s.system('Extract the person described in the text as JSON.');
  s.user(trim(text));
  s.assistantGenerate('person', new Gen().maxTokens(96).jsonSchema(SCHEMA));
  const person = toPerson(s.json('person'));
  // Field order as the Rust struct declares it.
  return JSON.stringify({ name: person.name, age: person.age, city: person.city });
}

const FIELDS = ['name', 'age', 'city'];

/**
 * Checks the parsed value the way serde's derived Deserialize of
 * `struct Person { name: String, age: u32, city: String }` does: an object
 * (other keys ignored) or a 3-element array, strings, an integer age that
 * fits a u32. The model's output is untrusted even under a constraint.
 */
function toPerson(v) {
  let fields;
  if (Array.isArray(v)) {
    if (v.length !== 3) throw new JsonError(`invalid length ${v.length}, expected struct Person with 3 elements`);
    fields = { name: v[0], age: v[1], city: v[2] };
  } else if (v !== null && typeof v === 'object') {
    for (const f of FIELDS) {
      if (!Object.prototype.hasOwnProperty.call(v, f)) throw new JsonError(`missing field \`${f}\``);
    }
    fields = v;
  } else {
    throw new JsonError(`invalid type: ${describe(v)}, expected struct Person`);
  }
  const { name, age, city } = fields;
  if (typeof name !== 'string') throw new JsonError(`invalid type: ${describe(name)}, expected a string`);
  if (!Number.isInteger(age) || age < 0 || age > 0xffff_ffff) {
    throw new JsonError(`invalid value: ${describe(age)}, expected u32`);
  }
  if (typeof city !== 'string') throw new JsonError(`invalid type: ${describe(city)}, expected a string`);
  return { name, age, city };
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'sequence';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  return `${typeof v} \`${String(v)}\``;
}
