//! HTTP probe: a guest tool that passes one request to the host's `fetch`
//! verb and returns the verb's result unchanged. It adds nothing and hides
//! nothing, so the host's answer (a response, or `denied`, `invalid`,
//! `exhausted`, `upstream`, `timeout`) is exactly what the caller sees.

// The generated export glue takes the `request` record flattened into nine
// core parameters.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "airlock-guest:http-probe/http-probe",
    path: ["../../wit", "wit"],
    generate_all,
    // The export is called `send`, and so is wasi-libc's socket function:
    // under the legacy core names the two symbols collide at link time. The
    // standard name mangling (`cm32p2||send`) keeps the component export
    // `send` and gives the core symbol another name.
    export_prefix: "cm32p2||",
});

use airlock::verbs::fetch;

/// The tool: a passthrough to `fetch.send`.
struct HttpProbe;

impl Guest for HttpProbe {
    fn send(req: Request) -> Result<Response, Error> {
        fetch::send(&req)
    }
}

export!(HttpProbe);
