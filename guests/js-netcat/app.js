// js-netcat: tries the network from JavaScript; airlock must refuse every attempt.
//
// A test guest for the network wall (tests/integration/no_network.rs): fetch,
// StarlingMonkey's only network path (it has no socket API), against the
// host's refusing wasi:http stubs. Built by `cargo xtask build-guests` with
// componentize-js (see xtask/src/polyglot.rs) into
// target/wasm32-wasip2/release/js_netcat.wasm; not a member of the Rust guests
// workspace.

// Fetches `url` (`post:URL` for a POST with a body) and says what happened.
export async function attempt(url) {
  try {
    const r = url.startsWith('post:')
      ? await fetch(url.slice(5), { method: 'POST', body: 'hello from the sandbox' })
      : await fetch(url);
    return `REACHED: http ${r.status}`;
  } catch (e) {
    return `refused: ${e.name}: ${e.message}`;
  }
}
