//! The verbs this host serves, and the one place that wires each verb crate in:
//! its name, its grant in a toolkit, its host-wide capability, its per-job
//! state and its linking. Adding a verb means adding a line to each list here.

use std::sync::Arc;

use airlock_complete::{CompleteCapability, CompleteGrant, CompleteState};
use airlock_core::{Capability, Job, ScopeChange};
use airlock_fetch::{FetchCapability, FetchGrant, FetchState};
use airlock_kv::{KvCapability, KvGrant, KvState};
use airlock_log::{LogCapability, LogGrant, LogState};
use airlock_sign::{SignCapability, SignGrant, SignState};
use airlock_sql::{SqlCapability, SqlGrant, SqlState};
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

use crate::job::{JobState, ToolContext};

/// One verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `airlock:verbs/sign`.
    Sign,
    /// `airlock:verbs/log`.
    Log,
    /// `airlock:verbs/fetch`.
    Fetch,
    /// `airlock:verbs/complete`.
    Complete,
    /// `airlock:verbs/kv`.
    Kv,
    /// `airlock:verbs/sql`.
    Sql,
}

impl Verb {
    /// Every verb this host serves.
    pub const ALL: &'static [Verb] = &[
        Verb::Sign,
        Verb::Log,
        Verb::Fetch,
        Verb::Complete,
        Verb::Kv,
        Verb::Sql,
    ];

    /// The verb's name in toolkits and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Sign => SignCapability::VERB,
            Verb::Log => LogCapability::VERB,
            Verb::Fetch => FetchCapability::VERB,
            Verb::Complete => CompleteCapability::VERB,
            Verb::Kv => KvCapability::VERB,
            Verb::Sql => SqlCapability::VERB,
        }
    }

    /// The verb whose interface (without package and version) is `iface`.
    pub fn from_interface(iface: &str) -> Option<Verb> {
        Self::ALL.iter().copied().find(|v| {
            let full = match v {
                Verb::Sign => SignCapability::INTERFACE,
                Verb::Log => LogCapability::INTERFACE,
                Verb::Fetch => FetchCapability::INTERFACE,
                Verb::Complete => CompleteCapability::INTERFACE,
                Verb::Kv => KvCapability::INTERFACE,
                Verb::Sql => SqlCapability::INTERFACE,
            };
            full.strip_prefix("airlock:verbs/") == Some(iface)
        })
    }

    /// How the verb is granted on the command line (`sign:KEY`).
    pub fn cli_example(self) -> &'static str {
        match self {
            Verb::Sign => "sign:KEY",
            Verb::Log => "log",
            Verb::Fetch => "fetch:URL-PATTERN",
            Verb::Complete => "complete:PROVIDER/MODEL",
            Verb::Kv => "kv:STORE",
            Verb::Sql => "sql",
        }
    }

    /// The verb called `name`.
    pub fn from_name(name: &str) -> Option<Verb> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of verbs (what a job links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VerbSet(u8);

impl VerbSet {
    /// No verb.
    pub const EMPTY: VerbSet = VerbSet(0);

    /// This set plus `v`.
    pub fn with(self, v: Verb) -> VerbSet {
        VerbSet(self.0 | v.bit())
    }

    /// Whether `v` is in the set.
    pub fn contains(self, v: Verb) -> bool {
        self.0 & v.bit() != 0
    }

    /// The verbs in the set, in [`Verb::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Verb> {
        Verb::ALL.iter().copied().filter(move |v| self.contains(*v))
    }
}

/// What one tool was granted (`[tools.NAME.grants]`). An absent verb does not
/// exist for the tool. Serializes with the toolkit's field names (absent verbs
/// left out), so a signed statement can carry it and read it back equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// The `sign` verb's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<Arc<SignGrant>>,
    /// The `log` verb's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Arc<LogGrant>>,
    /// The `fetch` verb's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Arc<FetchGrant>>,
    /// The `complete` verb's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<Arc<CompleteGrant>>,
    /// The `kv` verb's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<Arc<KvGrant>>,
    /// The `sql` verb's view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Arc<SqlGrant>>,
}

impl Grants {
    /// The granted verbs.
    pub fn set(&self) -> VerbSet {
        let mut s = VerbSet::EMPTY;
        if self.sign.is_some() {
            s = s.with(Verb::Sign);
        }
        if self.log.is_some() {
            s = s.with(Verb::Log);
        }
        if self.fetch.is_some() {
            s = s.with(Verb::Fetch);
        }
        if self.complete.is_some() {
            s = s.with(Verb::Complete);
        }
        if self.kv.is_some() {
            s = s.with(Verb::Kv);
        }
        if self.sql.is_some() {
            s = s.with(Verb::Sql);
        }
        s
    }

    /// Plain-words lines per granted verb, for `airlock explain`.
    pub fn describe(&self) -> Vec<(Verb, Vec<String>)> {
        let mut out = Vec::new();
        if let Some(g) = &self.sign {
            out.push((Verb::Sign, SignCapability::describe(g)));
        }
        if let Some(g) = &self.log {
            out.push((Verb::Log, LogCapability::describe(g)));
        }
        if let Some(g) = &self.fetch {
            out.push((Verb::Fetch, FetchCapability::describe(g)));
        }
        if let Some(g) = &self.complete {
            out.push((Verb::Complete, CompleteCapability::describe(g)));
        }
        if let Some(g) = &self.kv {
            out.push((Verb::Kv, KvCapability::describe(g)));
        }
        if let Some(g) = &self.sql {
            out.push((Verb::Sql, SqlCapability::describe(g)));
        }
        out
    }
}

/// `+ verb NAME` (widens) or `- verb NAME` when only one side grants a verb,
/// else the verb's own comparison.
fn compare_verb<C: Capability>(
    before: Option<&Arc<C::Grant>>,
    after: Option<&Arc<C::Grant>>,
) -> Vec<ScopeChange> {
    match (before, after) {
        (None, None) => Vec::new(),
        (None, Some(_)) => vec![ScopeChange::widening(format!("+ verb {}", C::VERB))],
        (Some(_), None) => vec![ScopeChange::narrowing(format!("- verb {}", C::VERB))],
        (Some(b), Some(a)) => C::compare(b, a),
    }
}

impl Grants {
    /// Every difference from these grants to `after`, verb by verb in
    /// [`Verb::ALL`] order, each marked `widens` when `after` allows something
    /// these do not. A verb only `after` grants is one line, `+ verb NAME`
    /// (its scope is what `describe` says); empty when both allow the same.
    pub fn compare(&self, after: &Grants) -> Vec<ScopeChange> {
        let mut out = Vec::new();
        for verb in Verb::ALL {
            out.extend(match verb {
                Verb::Sign => {
                    compare_verb::<SignCapability>(self.sign.as_ref(), after.sign.as_ref())
                }
                Verb::Log => compare_verb::<LogCapability>(self.log.as_ref(), after.log.as_ref()),
                Verb::Fetch => {
                    compare_verb::<FetchCapability>(self.fetch.as_ref(), after.fetch.as_ref())
                }
                Verb::Complete => compare_verb::<CompleteCapability>(
                    self.complete.as_ref(),
                    after.complete.as_ref(),
                ),
                Verb::Kv => compare_verb::<KvCapability>(self.kv.as_ref(), after.kv.as_ref()),
                Verb::Sql => compare_verb::<SqlCapability>(self.sql.as_ref(), after.sql.as_ref()),
            });
        }
        out
    }

    /// Whether these grants allow nothing `wider` does not; the error lists
    /// each widening change from `wider` to these, in plain words.
    pub fn within(&self, wider: &Grants) -> Result<(), Vec<ScopeChange>> {
        let widened: Vec<ScopeChange> = wider
            .compare(self)
            .into_iter()
            .filter(|c| c.widens)
            .collect();
        if widened.is_empty() {
            Ok(())
        } else {
            Err(widened)
        }
    }
}

/// The host-wide half of every verb: keys, clients, configuration.
#[derive(Debug, Default)]
pub struct Capabilities {
    /// Signing keys.
    pub sign: SignCapability,
    /// Logging.
    pub log: LogCapability,
    /// HTTP egress: credentials and the resolver.
    pub fetch: FetchCapability,
    /// Language-model providers.
    pub complete: CompleteCapability,
    /// Key-value stores.
    pub kv: KvCapability,
    /// Named databases and the pseudonym key.
    pub sql: SqlCapability,
}

impl Capabilities {
    /// Checks every grant against what the host has (at load, not per job).
    pub fn check(&self, grants: &Grants) -> Result<(), String> {
        if let Some(g) = &grants.sign {
            self.sign.check_grant(g)?;
        }
        if let Some(g) = &grants.log {
            self.log.check_grant(g)?;
        }
        if let Some(g) = &grants.fetch {
            self.fetch.check_grant(g)?;
        }
        if let Some(g) = &grants.complete {
            self.complete.check_grant(g)?;
        }
        if let Some(g) = &grants.kv {
            self.kv.check_grant(g)?;
        }
        if let Some(g) = &grants.sql {
            self.sql.check_grant(g)?;
        }
        Ok(())
    }
}

/// One job's state of each verb, built at the verb's first call from the
/// tool's grant (a job pays only for the verbs it uses), and boxed: the
/// store moves this struct whole. A verb that is not granted gets the empty
/// grant, which refuses everything: it is not linked either, this is a
/// second wall.
pub(crate) struct VerbStates {
    context: Arc<ToolContext>,
    job: Job,
    sign: Option<Box<SignState>>,
    log: Option<Box<LogState>>,
    fetch: Option<Box<FetchState>>,
    complete: Option<Box<CompleteState>>,
    kv: Option<Box<KvState>>,
    sql: Option<Box<SqlState>>,
}

/// The accessor of each verb's state: built on first use from the grant, or
/// from the empty grant `$empty` when the verb is not granted.
macro_rules! state_accessors {
    ($($verb:ident: $state:ty, $grant:ty = $empty:expr;)*) => {
        impl VerbStates {
            $(
                pub(crate) fn $verb(&mut self) -> &mut $state {
                    static EMPTY: std::sync::OnceLock<Arc<$grant>> = std::sync::OnceLock::new();
                    let VerbStates { context, job, $verb, .. } = self;
                    $verb.get_or_insert_with(|| {
                        let grant = context.grants.$verb.clone().unwrap_or_else(|| {
                            EMPTY.get_or_init(|| Arc::new(($empty)())).clone()
                        });
                        Box::new(context.caps.$verb.state(grant, job.clone()))
                    })
                }
            )*
        }
    };
}

state_accessors! {
    sign: SignState, SignGrant = SignGrant::default;
    log: LogState, LogGrant = || LogGrant { max_total_bytes: Some(0), ..LogGrant::default() };
    fetch: FetchState, FetchGrant = FetchGrant::default;
    complete: CompleteState, CompleteGrant = CompleteGrant::default;
    // The empty grant names no store: every call is denied.
    kv: KvState, KvGrant = KvGrant::default;
    // An empty view: no table exists for the tool.
    sql: SqlState, SqlGrant = || SqlGrant::new("");
}

impl VerbStates {
    /// No state yet for `job` of the tool of `context`.
    pub(crate) fn new(context: Arc<ToolContext>, job: Job) -> Self {
        Self {
            context,
            job,
            sign: None,
            log: None,
            fetch: None,
            complete: None,
            kv: None,
            sql: None,
        }
    }

    /// What every job of the tool shares.
    pub(crate) fn context(&self) -> &ToolContext {
        &self.context
    }

    /// The job's handle.
    pub(crate) fn job(&self) -> &Job {
        &self.job
    }

    /// Takes the job's log lines (none if it never logged).
    pub(crate) fn take_log_lines(&mut self) -> Vec<airlock_log::LogLine> {
        self.log
            .as_mut()
            .map(|log| log.take_lines())
            .unwrap_or_default()
    }
}

/// Links exactly the verbs in `set` (plus the type-only `types` interface).
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>, set: VerbSet) -> wasmtime::Result<()> {
    airlock_core::add_types_to_linker(linker)?;
    for verb in set.iter() {
        match verb {
            Verb::Sign => SignCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.sign())?,
            Verb::Log => LogCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.log())?,
            Verb::Fetch => {
                FetchCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.fetch())?
            }
            Verb::Complete => {
                CompleteCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.complete())?
            }
            Verb::Kv => KvCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.kv())?,
            Verb::Sql => SqlCapability::add_to_linker(linker, |s: &mut JobState| s.verbs.sql())?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    mod states {
        use super::*;
        use airlock_core::bindings::airlock::verbs::log::Host as _;
        use airlock_core::{Decision, MemoryAudit};
        use airlock_log::Level;

        fn states(grants: Grants, audit: Arc<MemoryAudit>) -> VerbStates {
            let (_, context, job) = crate::job::tests::test_job(grants, audit);
            VerbStates::new(context, job)
        }

        /// No state exists until its verb is called; a granted verb's works,
        /// and the state an ungranted verb would get (the linker never
        /// links it) refuses, audited as denied: the second wall.
        #[test]
        fn states_are_built_at_first_use_and_an_ungranted_verb_s_refuses() {
            let audit = Arc::new(MemoryAudit::default());
            let granted = Grants {
                log: Some(Arc::new(LogGrant::default())),
                ..Grants::default()
            };
            let mut s = states(granted, audit.clone());
            assert!(s.log.is_none() && s.sign.is_none() && s.sql.is_none());
            assert!(
                s.take_log_lines().is_empty(),
                "nothing logged, nothing built"
            );
            assert!(s.log.is_none());
            s.log().emit(Level::Info, "hello".into()).unwrap();
            assert!(s.log.is_some() && s.fetch.is_none());
            assert_eq!(s.take_log_lines()[0].message, "hello");

            let mut s = states(Grants::default(), audit.clone());
            let e = s.log().emit(Level::Info, "let me out".into()).unwrap_err();
            assert!(
                matches!(&e, airlock_core::VerbError::Guest(airlock_core::WitError::Exhausted(q)) if q == "log-bytes"),
                "{e:?}"
            );
            assert!(s.take_log_lines().is_empty());
            let records = audit.records();
            assert_eq!(records.len(), 2, "{records:?}");
            assert!(matches!(records[1].decision, Decision::Deny(_)));
        }
    }

    fn grants(toml_text: &str) -> Grants {
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
    }

    fn lines(changes: &[ScopeChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
            .collect()
    }

    const BEFORE: &str = r#"
        log = {}
        [sign]
        keys = ["jefe"]
        [fetch]
        allow = ["https://*.example.com/*"]
        max_requests = 10
    "#;

    const AFTER: &str = r#"
        [sign]
        keys = ["jefe", "release-key"]
        [fetch]
        allow = ["https://api.example.com/*", "https://api.new.example/*"]
        max_requests = 100
        [complete]
        provider = "openai"
        models = ["gpt-5"]
    "#;

    mod compare {
        use super::*;

        #[test]
        fn changes_come_verb_by_verb_and_a_new_verb_is_one_line() {
            let (before, after) = (grants(BEFORE), grants(AFTER));
            assert!(before.compare(&before).is_empty());
            assert_eq!(
                lines(&before.compare(&after)),
                [
                    "W + sign key release-key",
                    "N - verb log",
                    "N - fetch https://*.example.com/*",
                    "N + fetch https://api.example.com/* (within https://*.example.com/*)",
                    "W + fetch https://api.new.example/*",
                    "W ~ fetch max_requests 10 → 100",
                    "W + verb complete",
                ]
            );
            assert_eq!(
                lines(&after.compare(&before)),
                [
                    "N - sign key release-key",
                    "W + verb log",
                    "N - fetch https://api.example.com/* (still allowed by https://*.example.com/*)",
                    "N - fetch https://api.new.example/*",
                    "W + fetch https://*.example.com/*",
                    "N ~ fetch max_requests 100 → 10",
                    "N - verb complete",
                ]
            );
        }

        #[test]
        fn within_names_only_the_widening_changes() {
            let wide = grants(AFTER);
            let narrow = grants(
                r#"
                [sign]
                keys = ["release-key"]
                [fetch]
                allow = ["https://api.new.example/v1/*"]
                max_requests = 5
                "#,
            );
            assert_eq!(narrow.within(&wide), Ok(()));
            assert_eq!(wide.within(&wide), Ok(()));
            let err = wide.within(&narrow).unwrap_err();
            assert!(err.iter().all(|c| c.widens));
            assert_eq!(
                err.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                [
                    "+ sign key jefe",
                    "+ fetch https://api.example.com/*",
                    "+ fetch https://api.new.example/*",
                    "~ fetch max_requests 5 → 100",
                    "+ verb complete",
                ]
            );
        }

        #[test]
        fn a_sql_grant_is_read_from_a_toolkit_and_compared_by_its_view() {
            let before =
                grants("[sql]\ndatabase = \"crm\"\n[sql.tables.customers]\ncolumns = [\"id\"]\n");
            let after = grants(
                "[sql]\ndatabase = \"crm\"\n[sql.tables.customers]\n\
                 columns = [\"id\", \"email\"]\nmasked = { email = \"pseudonym\" }\n",
            );
            assert!(before.set().contains(Verb::Sql));
            assert_eq!(Verb::from_interface("sql"), Some(Verb::Sql));
            assert_eq!(
                lines(&before.compare(&after)),
                [
                    "W + sql column customers.email",
                    "N + sql masked customers.email"
                ]
            );
            assert_eq!(lines(&Grants::default().compare(&before)), ["W + verb sql"]);
            let json = serde_json::to_string(&after).unwrap();
            assert_eq!(serde_json::from_str::<Grants>(&json).unwrap(), after);
            let described = after.describe();
            assert_eq!(described[0].0, Verb::Sql);
            assert!(
                described[0]
                    .1
                    .iter()
                    .any(|l| l == "sees customers.id; email only as a pseudonym"),
                "{described:?}"
            );
        }

        #[test]
        fn grants_round_trip_through_canonical_json() {
            let g = grants(&format!(
                "{AFTER}\n[log]\nmax_total_bytes = 100\n[sign.domains]\njefe = \"d\"\n"
            ));
            let json = serde_json::to_string(&g).unwrap();
            let back: Grants = serde_json::from_str(&json).unwrap();
            assert_eq!(back, g);
            assert_eq!(serde_json::to_string(&back).unwrap(), json, "stable text");
            assert!(back.compare(&g).is_empty());
            assert_eq!(serde_json::to_string(&Grants::default()).unwrap(), "{}");
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            v["shell"] = serde_json::json!({});
            let e = serde_json::from_value::<Grants>(v).unwrap_err();
            assert!(e.to_string().contains("unknown field `shell`"), "{e}");
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            v["fetch"]["proxy"] = "http://x".into();
            assert!(serde_json::from_value::<Grants>(v).is_err());
        }

        fn arb() -> impl Strategy<Value = Grants> {
            let sign = prop::sample::subsequence(vec!["a", "b"], 0..3).prop_map(|k| SignGrant {
                keys: k.into_iter().map(String::from).collect(),
                ..SignGrant::default()
            });
            let log = prop::option::of(1usize..100).prop_map(|m| LogGrant {
                max_message_bytes: m,
                ..LogGrant::default()
            });
            let fetch = (
                prop::sample::subsequence(
                    vec![
                        "https://*.example.com/*",
                        "https://api.example.com/v1",
                        "https://api.example.com/*",
                        "http://api.example.com/*",
                    ],
                    0..3,
                ),
                1u32..50,
            )
                .prop_map(|(allow, max_requests)| FetchGrant {
                    allow: allow.into_iter().map(String::from).collect(),
                    max_requests,
                    ..FetchGrant::default()
                });
            let complete = (prop::sample::subsequence(vec!["m1", "m2"], 1..3), 1u32..9).prop_map(
                |(models, max_calls)| CompleteGrant {
                    max_calls,
                    ..CompleteGrant::new("openai", models)
                },
            );
            let kv = (
                prop::sample::select(vec!["a", "b"]),
                any::<bool>(),
                prop::option::of(1u64..20),
            )
                .prop_map(|(store, read_only, max_keys)| KvGrant {
                    store: store.into(),
                    read_only,
                    max_keys,
                    ..KvGrant::default()
                });
            (
                prop::option::of(sign),
                prop::option::of(log),
                prop::option::of(fetch),
                prop::option::of(complete),
                prop::option::of(kv),
            )
                .prop_map(|(sign, log, fetch, complete, kv)| Grants {
                    sql: None,
                    sign: sign.map(Arc::new),
                    log: log.map(Arc::new),
                    fetch: fetch.map(Arc::new),
                    complete: complete.map(Arc::new),
                    kv: kv.map(Arc::new),
                })
        }

        proptest! {
            #[test]
            fn within_agrees_with_no_widening_and_json_round_trips(a in arb(), b in arb()) {
                prop_assert!(a.compare(&a).is_empty());
                prop_assert_eq!(a.within(&a), Ok(()));
                let widening: Vec<ScopeChange> =
                    b.compare(&a).into_iter().filter(|c| c.widens).collect();
                match a.within(&b) {
                    Ok(()) => prop_assert!(widening.is_empty()),
                    Err(lines) => prop_assert_eq!(lines, widening),
                }
                // Within both ways: the same verbs, and nothing widens either way.
                if a.within(&b).is_ok() && b.within(&a).is_ok() {
                    prop_assert_eq!(a.set(), b.set());
                }
                let json = serde_json::to_string(&a).unwrap();
                prop_assert_eq!(serde_json::from_str::<Grants>(&json).unwrap(), a);
            }
        }
    }
}
