// `{{name}}`: an airlock tool.
//
// `greet` is the example export: rename it and change its signature in
// wit/world.wit (whose doc comments agents read), then here. Return objects
// whose fields match the WIT record (in camelCase), not JSON strings: airlock
// turns a record into a JSON object with a schema; a string of JSON reaches
// the agent escaped. Throw a string for the `err` case of the result.

{{#complete}}
import { chat } from 'airlock:verbs/complete@0.1.0';
{{/complete}}
{{#fetch}}
import { send } from 'airlock:verbs/fetch@0.1.0';
{{/fetch}}
{{#kv}}
import { get as kvGet, set as kvSet } from 'airlock:verbs/kv@0.1.0';
{{/kv}}
{{#log}}
import { emit } from 'airlock:verbs/log@0.1.0';
{{/log}}
{{#sign}}
import { hmacSha256 } from 'airlock:verbs/sign@0.1.0';
{{/sign}}
{{#sql}}
import { query } from 'airlock:verbs/sql@0.1.0';
{{/sql}}

{{#sign}}
// The host-held key this tool signs with, by name (granted in toolkit.toml).
const KEY = '{{name}}';
{{/sign}}
{{#fetch}}
// The page this tool fetches. EDIT it together with the `allow` list of the
// fetch grant in toolkit.toml: any other URL is refused.
const URL = '{{url}}';
{{/fetch}}

export function greet(name) {
  const message = `hello, ${name}`;
{{#log}}
  verb('log', () => emit('info', `greeting ${name}`));
{{/log}}
{{#sign}}
  const mac = verb('sign', () => hmacSha256(KEY, new TextEncoder().encode(message)));
{{/sign}}
{{#fetch}}
  const page = verb('fetch', () => send({ method: 'GET', url: URL, headers: [], body: undefined }));
{{/fetch}}
{{#complete}}
  const ask = { role: 'user', content: `Say hello to ${name} in one short sentence.` };
  // model: undefined: the grant's first model answers.
  const options = { model: undefined, maxTokens: 64, temperature: undefined, stop: [] };
  const completion = verb('complete', () => chat([ask], options));
{{/complete}}
{{#kv}}
  // A counter per name in the host's kv store (4 bytes, little-endian).
  const counter = `greeted/${name}`;
  const stored = verb('kv', () => kvGet(counter));
  const times = stored && stored.length === 4
    ? new DataView(stored.buffer, stored.byteOffset, 4).getUint32(0, true)
    : 0;
  const next = new Uint8Array(4);
  new DataView(next.buffer).setUint32(0, times + 1, true);
  verb('kv', () => kvSet(counter, next));
{{/kv}}
{{#sql}}
  const rows = verb('sql', () =>
    query('SELECT count(*) FROM greetings WHERE name = ?', [{ tag: 'text', val: name }]));
  const first = rows.rows.length ? rows.rows[0][0] : undefined;
  const greeted = first && first.tag === 'integer' ? first.val : 0n; // s64: a BigInt
{{/sql}}
  return {
    message,
{{#sign}}
    signature: Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(''),
{{/sign}}
{{#fetch}}
    status: page.status,
{{/fetch}}
{{#complete}}
    reply: completion.text,
{{/complete}}
{{#kv}}
    times,
{{/kv}}
{{#sql}}
    greeted,
{{/sql}}
  };
}

// Calls a verb; its error (thrown with the WIT error as `payload`) becomes a
// sentence for the agent, thrown as the `err` case of greet's result.
function verb(name, call) {
  try {
    return call();
  } catch (e) {
    const error = e && e.payload;
    switch (error && error.tag) {
      case 'denied': throw `${name} denied: ${error.val}`;
      case 'exhausted': throw `${name} exhausted its ${error.val} quota for this job`;
      case 'invalid': throw `${name} refused an invalid request: ${error.val}`;
      case 'upstream': throw `${name} failed upstream: ${error.val}`;
      case 'timeout': throw `${name} timed out: the job's deadline passed`;
      default: throw e;
    }
  }
}
