"""`{{name}}`: an airlock tool.

`greet` is the example export: rename it and change its signature in
wit/world.wit (whose doc comments agents read), then here. Return records
(the generated dataclasses), not JSON strings: airlock turns a record into a
JSON object with a schema; a string of JSON reaches the agent escaped. Raise
`Err("a sentence")` for the `err` case of the result.
"""

import wit_world
from componentize_py_types import Err
from wit_world import Greeting
{{#complete}}
from wit_world.imports import complete
{{/complete}}
{{#fetch}}
from wit_world.imports import fetch
{{/fetch}}
{{#kv}}
from wit_world.imports import kv
{{/kv}}
{{#log}}
from wit_world.imports import log
{{/log}}
{{#sign}}
from wit_world.imports import sign
{{/sign}}
{{#sql}}
from wit_world.imports import sql
{{/sql}}
from wit_world.imports import types

{{#sign}}
# The host-held key this tool signs with, by name (granted in toolkit.toml).
KEY = "{{name}}"
{{/sign}}
{{#fetch}}
# The page this tool fetches. EDIT it together with the `allow` list of the
# fetch grant in toolkit.toml: any other URL is refused.
URL = "{{url}}"
{{/fetch}}


class WitWorld(wit_world.WitWorld):
    def greet(self, name: str) -> Greeting:
        message = f"hello, {name}"
{{#log}}
        try:
            log.emit(log.Level.INFO, f"greeting {name}")
        except Err as e:
            raise Err(describe("log", e.value))
{{/log}}
{{#sign}}
        try:
            mac = sign.hmac_sha256(KEY, message.encode())
        except Err as e:
            raise Err(describe("sign", e.value))
{{/sign}}
{{#fetch}}
        try:
            page = fetch.send(fetch.Request(method="GET", url=URL, headers=[], body=None))
        except Err as e:
            raise Err(describe("fetch", e.value))
{{/fetch}}
{{#complete}}
        ask = complete.Message(
            role=complete.Role.USER,
            content=f"Say hello to {name} in one short sentence.",
        )
        # model=None: the grant's first model answers.
        options = complete.Options(model=None, max_tokens=64, temperature=None, stop=[])
        try:
            completion = complete.chat([ask], options)
        except Err as e:
            raise Err(describe("complete", e.value))
{{/complete}}
{{#kv}}
        # A counter per name in the host's kv store (4 bytes, little-endian).
        counter = f"greeted/{name}"
        try:
            stored = kv.get(counter)
            times = int.from_bytes(stored, "little") if stored is not None and len(stored) == 4 else 0
            kv.set(counter, (times + 1).to_bytes(4, "little"))
        except Err as e:
            raise Err(describe("kv", e.value))
{{/kv}}
{{#sql}}
        try:
            rows = sql.query(
                "SELECT count(*) FROM greetings WHERE name = ?", [sql.Value_Text(name)]
            )
        except Err as e:
            raise Err(describe("sql", e.value))
        first = rows.rows[0][0] if rows.rows else None
        greeted = first.value if isinstance(first, sql.Value_Integer) else 0
{{/sql}}
        return Greeting(
            message=message,
{{#sign}}
            signature=mac.hex(),
{{/sign}}
{{#fetch}}
            status=page.status,
{{/fetch}}
{{#complete}}
            reply=completion.text,
{{/complete}}
{{#kv}}
            times=times,
{{/kv}}
{{#sql}}
            greeted=greeted,
{{/sql}}
        )


def describe(verb: str, error: types.Error) -> str:
    """A verb's error as a sentence for the agent."""
    if isinstance(error, types.Error_Denied):
        return f"{verb} denied: {error.value}"
    if isinstance(error, types.Error_Exhausted):
        return f"{verb} exhausted its {error.value} quota for this job"
    if isinstance(error, types.Error_Invalid):
        return f"{verb} refused an invalid request: {error.value}"
    if isinstance(error, types.Error_Upstream):
        return f"{verb} failed upstream: {error.value}"
    return f"{verb} timed out: the job's deadline passed"
