//! The canary scan: every verb that uses a secret runs with a canary in its
//! place (an HMAC key, an Ed25519 seed, an LLM API key, a fetch credential),
//! on a host whose engine lets a [`MemoryProbe`] read every guest linear
//! memory whenever the guest calls the host, when the host returns, and when
//! the job ends. The probe looks for each canary raw, in base64 and base64url
//! (at every byte alignment), in hex (both cases), percent-encoded, JSON- and
//! HTML-escaped; the fetch origin also reflects its credential in every
//! spelling a hostile upstream would use. Zero
//! hits is the assertion; the same probe on a deliberately leaking `sign`
//! implementation must find the key, which proves the scan can fail.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;
use airlock::probe::{MemoryProbe, ProbePoint};
use airlock::{Budget, Capabilities, HostOptions, JobOutput};
use airlock_complete::{CompleteCapability, CompleteGrant, ProviderConfig, ProviderKind};
use airlock_core::VerbError;
use airlock_core::bindings::airlock::verbs::{log as wit_log, sign as wit_sign};
use airlock_fetch::{
    CredentialRef, CredentialSpec, FetchCapability, FetchGrant, HostCredential, StaticResolver,
};
use airlock_sign::{SignCapability, SignKey};
use airlock_tests::canaries::{
    CANARY_ED_SEED as ED_SEED, CANARY_FETCH_SECRET as FETCH_SECRET, CANARY_HMAC_KEY as HMAC_KEY,
    CANARY_LLM_KEY as LLM_KEY, assert_no_secret, canaries, reflections,
};
use airlock_tests::{TestHost, cache_dir, grants, guest_bytes, host_with, load_ok};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretSlice;
use serde_json::json;
use wasmtime::component::{Component, HasSelf, Linker, Val};

use crate::complete::openai_ok;
use crate::fetch::{Server, ok};

/// A [`MemoryProbe`] that counts the memories it saw at each point and
/// records every canary spelling it found.
#[derive(Debug)]
struct CanaryScan {
    names: Vec<String>,
    /// All spellings at once: one pass over each memory.
    matcher: AhoCorasick,
    seen: Mutex<Seen>,
}

/// What one [`CanaryScan`] saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// How many memories were scanned, per point.
    scans: HashMap<&'static str, usize>,
    /// The spellings found, with where.
    hits: BTreeSet<String>,
}

impl CanaryScan {
    fn new() -> Arc<Self> {
        let (names, patterns): (Vec<String>, Vec<Vec<u8>>) = canaries().into_iter().unzip();
        Arc::new(Self {
            names,
            matcher: AhoCorasick::new(patterns).expect("the spellings build a matcher"),
            seen: Mutex::default(),
        })
    }

    fn seen(&self) -> Seen {
        self.seen.lock().expect("scan results").clone()
    }
}

impl MemoryProbe for CanaryScan {
    fn inspect(&self, point: ProbePoint, memory: &[u8]) {
        let label = match point {
            ProbePoint::CallingHost => "calling host",
            ProbePoint::ReturningFromHost => "returning from host",
            ProbePoint::JobEnd => "job end",
        };
        let found: Vec<String> = self
            .matcher
            .find_overlapping_iter(memory)
            .map(|m| format!("{} ({label})", self.names[m.pattern().as_usize()]))
            .collect();
        let mut seen = self.seen.lock().expect("scan results");
        *seen.scans.entry(label).or_default() += 1;
        seen.hits.extend(found);
    }
}

/// The capabilities holding every canary; `llm_port` is the loopback LLM,
/// `origin_port` the API the fetch credential is bound to.
fn canary_caps(llm_port: u16, origin_port: u16) -> Capabilities {
    let hmac = SignKey::hmac(SecretSlice::from(HMAC_KEY.to_vec())).expect("an HMAC key");
    let ed = SignKey::ed25519_from_seed(&SecretSlice::from(ED_SEED.to_vec())).expect("a seed");
    let spec = CredentialSpec {
        secret: "token".into(),
        header: "Authorization".into(),
        format: Some("Bearer {}".into()),
        urls: vec![format!("http://api.test:{origin_port}/")],
    };
    let credential = HostCredential::new(
        "token",
        &spec,
        SecretSlice::from(FETCH_SECRET.as_bytes().to_vec()),
    )
    .expect("a valid credential");
    let resolver = StaticResolver::new().with("api.test", ["127.0.0.1".parse().expect("ip")]);
    let provider = ProviderConfig::new(
        ProviderKind::OpenAi,
        format!("http://127.0.0.1:{llm_port}/v1"),
    )
    .with_api_key(SecretSlice::from(LLM_KEY.as_bytes().to_vec()));
    Capabilities {
        sign: SignCapability::new([("mac".to_string(), hmac), ("ed".to_string(), ed)]),
        fetch: FetchCapability::new(vec![credential], Arc::new(resolver)).expect("TLS defaults"),
        complete: CompleteCapability::new(vec![("local".to_string(), provider)])
            .expect("a valid provider"),
        ..Capabilities::default()
    }
}

/// A host with [`canary_caps`] whose every job is shown to `scan`.
fn probed_host(scan: &Arc<CanaryScan>, llm_port: u16, origin_port: u16) -> TestHost {
    host_with(
        HostOptions {
            cache_dir: Some(cache_dir().to_path_buf()),
            memory_probe: Some(scan.clone()),
            ..HostOptions::default()
        },
        canary_caps(llm_port, origin_port),
    )
}

/// Everything a job hands back to its caller, as one text to grep.
fn output_text(out: &JobOutput) -> String {
    format!(
        "{}\n{}\n{}\n{:?}",
        out.value, out.stdout, out.stderr, out.logs
    )
}

mod secrets {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_canary_reaches_guest_memory_output_or_audit_through_any_verb() {
        let llm = Server::start(|_, _| openai_ok("hello otters", 7, 2)).await;
        let origin = Server::start(|_, seen| {
            let auth = seen.header("authorization").unwrap_or_default();
            if seen.path == "/v1/echo" {
                // A hostile origin reflects the token in every spelling a
                // guest's JSON or HTML parser would decode back.
                let token = auth.strip_prefix("Bearer ").unwrap_or_default();
                let body: Vec<String> = reflections(token)
                    .into_iter()
                    .map(|(label, spelled)| format!("{label}: {spelled}\n"))
                    .collect();
                return ok(body.concat());
            }
            // The origin proves the credential arrived, without echoing it.
            ok(format!(
                "authorized={}",
                auth == format!("Bearer {FETCH_SECRET}")
            ))
        })
        .await;
        let scan = CanaryScan::new();
        let host = probed_host(&scan, llm.port, origin.port);

        // sign: every function, on both keys.
        let keys = load_ok(
            &host,
            "key-user",
            grants(json!({ "sign": { "keys": ["mac", "ed"] }, "log": {} })),
            Budget::default(),
        );
        let args = json!({ "hmac-key": "mac", "ed-key": "ed", "data": [1, 2, 3] });
        let out = host
            .run(&keys, Some("exercise"), &args)
            .await
            .expect("key-user runs");
        let lines = out.value.as_array().expect("a list of lines");
        assert_eq!(lines.len(), 5, "{}", out.value);
        assert_eq!(lines[1], "hmac-sha256-verify true");
        assert_eq!(lines[3], "ed25519-verify true");
        let mut outputs = vec![output_text(&out)];

        // fetch: a request the host adds the credential to.
        let mut fetch = grants(json!({ "log": {} }));
        let p = origin.port;
        fetch.fetch = Some(Arc::new(FetchGrant {
            allow: vec![format!("http://api.test:{p}/")],
            private_networks: vec!["127.0.0.1".into()],
            credentials: vec![CredentialRef::named("token")],
            ..FetchGrant::default()
        }));
        let probe = load_ok(&host, "http-probe", fetch, Budget::default());
        let req = json!({ "method": "GET", "url": format!("http://api.test:{p}/v1/me"),
                          "headers": [], "body": null });
        let out = host
            .run(&probe, Some("send"), &json!({ "req": req }))
            .await
            .expect("http-probe runs");
        let body: Vec<u8> = out.value["body"]
            .as_array()
            .expect("a body")
            .iter()
            .map(|b| b.as_u64().expect("a byte") as u8)
            .collect();
        assert_eq!(
            body, b"authorized=true",
            "the credential reached the origin"
        );
        outputs.push(output_text(&out));
        let req = json!({ "method": "GET", "url": format!("http://api.test:{p}/v1/echo"),
                          "headers": [], "body": null });
        let out = host
            .run(&probe, Some("send"), &json!({ "req": req }))
            .await
            .expect("http-probe runs");
        let echoed: Vec<u8> = out.value["body"]
            .as_array()
            .expect("a body")
            .iter()
            .map(|b| b.as_u64().expect("a byte") as u8)
            .collect();
        let echoed = String::from_utf8_lossy(&echoed).into_owned();
        assert_eq!(
            echoed.matches(": [REDACTED]\n").count(),
            reflections(FETCH_SECRET).len(),
            "{echoed}"
        );
        outputs.push(echoed);
        outputs.push(output_text(&out));

        // complete: a chat the host authenticates with the LLM key.
        let mut chat = grants(json!({ "log": {} }));
        chat.complete = Some(Arc::new(CompleteGrant::new("local", ["gpt-test"])));
        let chatter = load_ok(&host, "chat-probe", chat, Budget::default());
        let messages = json!([{ "role": "user", "content": "Say hi." }]);
        let out = host
            .run(
                &chatter,
                Some("chat"),
                &json!({ "messages": messages, "options": { "stop": [] } }),
            )
            .await
            .expect("chat-probe runs");
        assert_eq!(out.value["text"], "hello otters", "{}", out.value);
        let llm_auth = llm.seen()[0].header("authorization");
        assert_eq!(llm_auth, Some(format!("Bearer {LLM_KEY}")));
        outputs.push(output_text(&out));

        let seen = scan.seen();
        assert!(
            seen.hits.is_empty(),
            "canaries in guest memory: {:?}",
            seen.hits
        );
        // The scan ran where it claims to: after host calls and at every job end.
        assert_eq!(seen.scans.get("job end"), Some(&4), "{:?}", seen.scans);
        assert!(
            seen.scans.get("returning from host").copied().unwrap_or(0) >= 8,
            "{:?}",
            seen.scans
        );
        for (i, text) in outputs.iter().enumerate() {
            assert_no_secret(&format!("the output of job {i}"), text);
        }
        let audit = format!("{:?}", host.audit.records());
        assert!(audit.contains("ed25519-sign"), "{audit}");
        assert_no_secret("the audit records", &audit);
    }

    /// A `sign` implementation that hands the guest its key instead of a MAC:
    /// what the scan exists to catch.
    struct LeakyVerbs;

    impl wit_sign::Host for LeakyVerbs {
        async fn hmac_sha256(
            &mut self,
            _key: String,
            _data: Vec<u8>,
        ) -> Result<Vec<u8>, VerbError> {
            Ok(HMAC_KEY.to_vec())
        }
        async fn hmac_sha256_verify(
            &mut self,
            _key: String,
            _data: Vec<u8>,
            _mac: Vec<u8>,
        ) -> Result<bool, VerbError> {
            Ok(true)
        }
        async fn ed25519_sign(
            &mut self,
            _key: String,
            _data: Vec<u8>,
        ) -> Result<Vec<u8>, VerbError> {
            // The LLM key inside a base64 text, one byte off alignment.
            Ok(STANDARD.encode(format!("x{LLM_KEY}")).into_bytes())
        }
        async fn ed25519_verify(
            &mut self,
            _key: String,
            _data: Vec<u8>,
            _signature: Vec<u8>,
        ) -> Result<bool, VerbError> {
            Ok(true)
        }
        async fn ed25519_public_key(&mut self, _key: String) -> Result<Vec<u8>, VerbError> {
            Ok(hex::encode(ED_SEED).into_bytes())
        }
    }

    impl wit_log::Host for LeakyVerbs {
        fn emit(&mut self, _level: wit_log::Level, _message: String) -> Result<(), VerbError> {
            Ok(())
        }
    }

    airlock_core::impl_types_host!(LeakyVerbs);

    #[tokio::test]
    async fn the_scan_catches_a_verb_that_leaks_its_key() {
        let engine = airlock::engine::build_debug_engine(airlock::engine::PoolSize::default())
            .expect("a debug engine");
        let component =
            Component::new(&engine, guest_bytes("key-user")).expect("key-user compiles");
        let mut linker: Linker<LeakyVerbs> = Linker::new(&engine);
        airlock_core::add_types_to_linker(&mut linker).expect("types");
        wit_sign::add_to_linker::<_, HasSelf<LeakyVerbs>>(&mut linker, |s| s).expect("sign");
        wit_log::add_to_linker::<_, HasSelf<LeakyVerbs>>(&mut linker, |s| s).expect("log");
        linker
            .define_unknown_imports_as_traps(&component)
            .expect("stub the rest");
        let mut store = wasmtime::Store::new(&engine, LeakyVerbs);
        store.set_fuel(u64::MAX).expect("fuel");
        store.set_epoch_deadline(u64::MAX);
        let scan = CanaryScan::new();
        airlock::probe::watch(&mut store, scan.clone());

        let instance = linker
            .instantiate_async(&mut store, &component)
            .await
            .expect("instantiates");
        let exercise = instance
            .get_func(&mut store, "exercise")
            .expect("the export");
        let bytes = Val::List(vec![Val::U8(1)]);
        let args = [Val::String("mac".into()), Val::String("ed".into()), bytes];
        let mut result = [Val::Bool(false)];
        exercise
            .call_async(&mut store, &args, &mut result)
            .await
            .expect("the call returns");
        airlock::probe::inspect(&mut store, ProbePoint::JobEnd, &*scan);

        let hits = scan.seen().hits;
        for leak in [
            "hmac key raw (returning from host)",
            "llm key base64+1 (returning from host)",
            "ed25519 seed hex (returning from host)",
        ] {
            assert!(hits.contains(leak), "{leak} was not seen: {hits:?}");
        }
    }
}
