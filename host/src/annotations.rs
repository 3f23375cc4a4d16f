//! MCP tool annotations (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
//! `openWorldHint`), computed from a tool's grants and never written by hand:
//! a grant is exactly what a tool can do, so it is also what a client may
//! assume. One function, [`classify`], serves `tools/list`, `airlock schema`
//! and `airlock explain`. A toolkit may make a hint more cautious, never less.

use serde::Deserialize;

use crate::verbs::{Grants, Verb};

/// The four hints, as MCP defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// The tool does not modify its environment.
    pub read_only: bool,
    /// The tool may perform destructive (not only additive) updates.
    pub destructive: bool,
    /// Calling it again with the same arguments has no additional effect.
    pub idempotent: bool,
    /// The tool interacts with entities outside the host.
    pub open_world: bool,
}

impl Hints {
    /// What a tool with no verbs may be assumed to be: read-only, not
    /// destructive, idempotent, closed-world.
    pub const PURE: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
}

/// `[tools.NAME.annotations]`: hints a toolkit sets itself, each optional and
/// each allowed only in the cautious direction (checked by [`check`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintOverrides {
    /// `false` to say the tool changes things although its grants do not.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// `true` to call the tool destructive although its grants are not.
    #[serde(default)]
    pub destructive: Option<bool>,
    /// `false` to say repeated calls may have more effect.
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// `true` to say the tool reaches the outside world.
    #[serde(default)]
    pub open_world: Option<bool>,
}

/// The hints of a set of grants and, for each hint, why it has its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The hints.
    pub hints: Hints,
    /// Why `read_only` is what it is.
    pub read_only_why: String,
    /// Why `destructive` is what it is.
    pub destructive_why: String,
    /// Why `idempotent` is what it is.
    pub idempotent_why: String,
    /// Why `open_world` is what it is.
    pub open_world_why: String,
}

/// HTTP methods that only read.
const READING_METHODS: [&str; 2] = ["GET", "HEAD"];
/// Methods that change things without destroying them. Every other method a
/// grant names (DELETE, PUT, PATCH, and any method airlock does not know)
/// counts as destructive.
const ADDITIVE_METHODS: [&str; 2] = ["POST", "OPTIONS"];

/// The hints `grants` allow, with the reason for each:
///
/// - no verbs, `log`, `sign`: read-only, idempotent, closed-world;
/// - `complete`: open-world (it talks to a model outside the host);
/// - `fetch`: open-world; read-only and idempotent only if its methods are
///   GET and HEAD (the default when a grant lists none); any other method
///   makes it neither, and DELETE, PUT, PATCH or a method airlock does not
///   know make it destructive.
pub fn classify(grants: &Grants) -> Classification {
    let mut hints = Hints::PURE;
    let mut changes = Vec::new();
    let mut destroys = Vec::new();
    let mut outside = Vec::new();
    for verb in grants.set().iter() {
        match verb {
            // Writable kv and sql grants are classified after the loop: they
            // change the host's store or the operator's database, nothing outside.
            Verb::Sign | Verb::Log | Verb::Kv | Verb::Sql => {}
            Verb::Complete => outside.push("complete sends prompts to a model".to_string()),
            Verb::Fetch => {
                let Some(fetch) = &grants.fetch else { continue };
                outside.push(format!("fetch reaches {}", fetch.allow.join(", ")));
                let mut methods: Vec<String> = fetch
                    .methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                methods.sort();
                methods.dedup();
                for m in methods {
                    if READING_METHODS.contains(&m.as_str()) {
                        continue;
                    }
                    if !ADDITIVE_METHODS.contains(&m.as_str()) {
                        destroys.push(m.clone());
                    }
                    changes.push(m);
                }
            }
        }
    }
    let list = |v: &[String]| v.join(", ");
    let read_only_why = if changes.is_empty() {
        if grants.fetch.is_some() {
            "fetch may only read (GET, HEAD); no other verb changes anything".to_string()
        } else {
            "none of its verbs changes anything outside airlock".to_string()
        }
    } else {
        hints.read_only = false;
        hints.idempotent = false;
        format!("fetch may send {}", list(&changes))
    };
    let idempotent_why = if hints.idempotent {
        "it changes nothing, so calling it again has no further effect".to_string()
    } else {
        format!(
            "fetch may send {}, so a repeated call may act again",
            list(&changes)
        )
    };
    let destructive_why = if destroys.is_empty() {
        if changes.is_empty() {
            "it changes nothing".to_string()
        } else {
            format!("fetch may only add ({})", list(&changes))
        }
    } else {
        hints.destructive = true;
        format!("fetch may send {}", list(&destroys))
    };
    let open_world_why = if outside.is_empty() {
        "it reaches nothing outside the host".to_string()
    } else {
        hints.open_world = true;
        outside.join("; ")
    };
    let mut c = Classification {
        hints,
        read_only_why,
        destructive_why,
        idempotent_why,
        open_world_why,
    };
    // kv keeps state in the host's store and sql in the operator's database:
    // a writable grant changes it, overwrites and deletes (a read-only one
    // changes nothing).
    let mut writes = Vec::new();
    if let Some(kv) = grants.kv.as_ref().filter(|k| !k.read_only) {
        writes.push(format!(
            "kv may set and delete keys in store `{}`",
            kv.store
        ));
    }
    if let Some(sql) = grants.sql.as_ref().filter(|s| s.write) {
        writes.push(format!(
            "sql may insert, update and delete rows in database `{}`",
            sql.database
        ));
    }
    if !writes.is_empty() {
        let why = writes.join("; ");
        if c.hints.read_only {
            c.read_only_why = why.clone();
        } else {
            c.read_only_why = format!("{}; {why}", c.read_only_why);
        }
        if c.hints.idempotent {
            c.idempotent_why = format!("{why}, so a repeated call may act again");
        }
        if !c.hints.destructive {
            c.destructive_why = format!("{why}, replacing or removing what was there");
        }
        c.hints.read_only = false;
        c.hints.idempotent = false;
        c.hints.destructive = true;
    }
    c
}

/// Refuses an override that is less cautious than `grants` allow; the error
/// names the field, why the grants forbid it and what to write instead.
pub fn check(grants: &Grants, overrides: &HintOverrides) -> Result<(), String> {
    let c = classify(grants);
    let refuse = |field: &str, value: bool, why: &str| {
        Err(format!(
            "{field} = {value} claims less than its grants allow ({why}); a toolkit may only make \
             a hint more cautious: remove the line or write {field} = {}",
            !value
        ))
    };
    if overrides.read_only == Some(true) && !c.hints.read_only {
        return refuse("read_only", true, &c.read_only_why);
    }
    if overrides.destructive == Some(false) && c.hints.destructive {
        return refuse("destructive", false, &c.destructive_why);
    }
    if overrides.idempotent == Some(true) && !c.hints.idempotent {
        return refuse("idempotent", true, &c.idempotent_why);
    }
    if overrides.open_world == Some(false) && c.hints.open_world {
        return refuse("open_world", false, &c.open_world_why);
    }
    Ok(())
}

/// The hints of a tool: [`classify`] of its grants, with the toolkit's
/// overrides applied only where they are more cautious.
pub fn hints(grants: &Grants, overrides: &HintOverrides) -> Hints {
    let h = classify(grants).hints;
    Hints {
        read_only: h.read_only && overrides.read_only.unwrap_or(true),
        destructive: h.destructive || overrides.destructive.unwrap_or(false),
        idempotent: h.idempotent && overrides.idempotent.unwrap_or(true),
        open_world: h.open_world || overrides.open_world.unwrap_or(false),
    }
}

/// The classification in plain words, one line per hint, for `airlock explain`.
pub fn explain(grants: &Grants, overrides: &HintOverrides) -> Vec<String> {
    let c = classify(grants);
    let h = hints(grants, overrides);
    let said = |computed: bool, final_: bool| {
        if computed == final_ {
            ""
        } else {
            " (the toolkit says so, more cautiously than its grants)"
        }
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    vec![
        format!(
            "read-only: {}{}: {}",
            yes(h.read_only),
            said(c.hints.read_only, h.read_only),
            c.read_only_why
        ),
        format!(
            "destructive: {}{}: {}",
            yes(h.destructive),
            said(c.hints.destructive, h.destructive),
            c.destructive_why
        ),
        format!(
            "idempotent: {}{}: {}",
            yes(h.idempotent),
            said(c.hints.idempotent, h.idempotent),
            c.idempotent_why
        ),
        format!(
            "open world: {}{}: {}",
            yes(h.open_world),
            said(c.hints.open_world, h.open_world),
            c.open_world_why
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grants(v: serde_json::Value) -> Grants {
        serde_json::from_value(v).unwrap()
    }

    fn fetch(methods: Option<&[&str]>) -> Grants {
        let mut g = json!({"allow": ["https://api.example.com/"]});
        if let Some(m) = methods {
            g["methods"] = json!(m);
        }
        grants(json!({ "fetch": g }))
    }

    fn h(read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> Hints {
        Hints {
            read_only,
            destructive,
            idempotent,
            open_world,
        }
    }

    #[test]
    fn no_verbs_is_read_only_idempotent_and_closed_world() {
        assert_eq!(classify(&Grants::default()).hints, Hints::PURE);
        assert_eq!(Hints::PURE, h(true, false, true, false));
    }

    #[test]
    fn log_only_is_read_only() {
        assert_eq!(classify(&grants(json!({"log": {}}))).hints, Hints::PURE);
    }

    #[test]
    fn sign_is_read_only() {
        let g = grants(json!({"sign": {"keys": ["k"]}, "log": {}}));
        assert_eq!(classify(&g).hints, Hints::PURE);
    }

    #[test]
    fn complete_is_open_world_and_still_read_only() {
        let c = classify(&grants(
            json!({"complete": {"provider": "p", "models": ["m"]}}),
        ));
        assert_eq!(c.hints, h(true, false, true, true));
        assert!(c.open_world_why.contains("complete"), "{c:?}");
    }

    #[test]
    fn fetch_with_get_and_head_is_read_only_and_open_world() {
        for methods in [None, Some(&["GET", "HEAD"][..]), Some(&["get"][..])] {
            let c = classify(&fetch(methods));
            assert_eq!(c.hints, h(true, false, true, true), "{methods:?}");
            assert!(c.open_world_why.contains("https://api.example.com/"));
        }
    }

    #[test]
    fn kv_read_only_changes_nothing_and_writable_kv_is_destructive_but_closed() {
        let c = classify(&grants(json!({"kv": {"store": "s", "read_only": true}})));
        assert_eq!(c.hints, Hints::PURE);
        let c = classify(&grants(json!({"kv": {"store": "s"}})));
        assert_eq!(c.hints, h(false, true, false, false));
        assert!(c.read_only_why.contains("kv may set and delete"), "{c:?}");
        assert!(c.destructive_why.contains("store `s`"), "{c:?}");
        let c = classify(&fetch(Some(&["POST"])));
        let mut g = fetch(Some(&["POST"]));
        g.kv = grants(json!({"kv": {"store": "s"}})).kv;
        let both = classify(&g);
        assert!(both.read_only_why.starts_with(&c.read_only_why), "{both:?}");
        assert!(both.read_only_why.contains("kv may"), "{both:?}");
    }

    #[test]
    fn a_writing_sql_grant_is_destructive_and_a_read_only_one_pure() {
        let c = classify(&grants(json!({"sql": {"database": "crm"}})));
        assert_eq!(c.hints, Hints::PURE);
        let c = classify(&grants(json!({"sql": {"database": "crm", "write": true}})));
        assert_eq!(c.hints, h(false, true, false, false));
        assert!(c.destructive_why.contains("database `crm`"), "{c:?}");
    }

    #[test]
    fn fetch_with_no_method_at_all_stays_read_only() {
        assert_eq!(
            classify(&fetch(Some(&[]))).hints,
            h(true, false, true, true)
        );
    }

    #[test]
    fn fetch_post_is_not_read_only_nor_idempotent_but_not_destructive() {
        for m in ["POST", "post", "OPTIONS"] {
            let c = classify(&fetch(Some(&["GET", m])));
            assert_eq!(c.hints, h(false, false, false, true), "{m}");
            assert!(c.read_only_why.contains(&m.to_ascii_uppercase()), "{c:?}");
        }
    }

    #[test]
    fn fetch_delete_put_patch_or_an_unknown_method_is_destructive() {
        for m in ["DELETE", "PUT", "patch", "PURGE"] {
            let c = classify(&fetch(Some(&["GET", "POST", m])));
            assert_eq!(c.hints, h(false, true, false, true), "{m}");
            assert!(c.destructive_why.contains(&m.to_ascii_uppercase()), "{c:?}");
        }
    }

    #[test]
    fn a_toolkit_may_make_a_hint_more_cautious() {
        let all = HintOverrides {
            read_only: Some(false),
            destructive: Some(true),
            idempotent: Some(false),
            open_world: Some(true),
        };
        assert_eq!(check(&Grants::default(), &all), Ok(()));
        assert_eq!(hints(&Grants::default(), &all), h(false, true, false, true));
        // Saying what the grants already say is fine too.
        let same = HintOverrides {
            read_only: Some(true),
            destructive: Some(false),
            idempotent: Some(true),
            open_world: Some(false),
        };
        assert_eq!(check(&Grants::default(), &same), Ok(()));
        assert_eq!(hints(&Grants::default(), &same), Hints::PURE);
        let lines = explain(&Grants::default(), &all);
        assert!(
            lines[0].starts_with("read-only: no (the toolkit says so"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_toolkit_may_never_make_a_hint_less_cautious() {
        let post = fetch(Some(&["POST", "DELETE"]));
        let cases = [
            (
                HintOverrides {
                    read_only: Some(true),
                    ..Default::default()
                },
                "read_only = true",
            ),
            (
                HintOverrides {
                    destructive: Some(false),
                    ..Default::default()
                },
                "destructive = false",
            ),
            (
                HintOverrides {
                    idempotent: Some(true),
                    ..Default::default()
                },
                "idempotent = true",
            ),
            (
                HintOverrides {
                    open_world: Some(false),
                    ..Default::default()
                },
                "open_world = false",
            ),
        ];
        for (o, field) in cases {
            let e = check(&post, &o).unwrap_err();
            assert!(
                e.starts_with(field)
                    && e.contains("more cautious")
                    && (e.contains("fetch may send") || e.contains("fetch reaches")),
                "{e}"
            );
            // Even if the check were skipped, the hint would not move.
            assert_eq!(hints(&post, &o), h(false, true, false, true));
        }
    }

    #[test]
    fn a_less_cautious_hint_stops_the_toolkit_at_load() {
        let kit = "[tools.poster]\ncomponent = 'p.wasm'\n\
                   [tools.poster.grants.fetch]\nallow = ['https://api.example.com/']\n\
                   methods = ['GET', 'POST']\n";
        let path = std::path::Path::new("kit.toml");
        let e = crate::Toolkit::parse(
            &format!("{kit}[tools.poster.annotations]\nread_only = true\n"),
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("kit.toml: [tools.poster.annotations] read_only = true claims less")
                && e.contains("fetch may send POST")
                && e.contains("write read_only = false"),
            "{e}"
        );
        let ok = crate::Toolkit::parse(
            &format!("{kit}[tools.poster.annotations]\ndestructive = true\n"),
            path,
        )
        .unwrap();
        let spec = ok.tool("poster").unwrap();
        assert_eq!(
            hints(&spec.grants, &spec.annotations),
            h(false, true, false, true)
        );
        let e = crate::Toolkit::parse(
            &format!("{kit}[tools.poster.annotations]\nsafe = true\n"),
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `safe`"), "{e}");
    }

    #[test]
    fn explain_says_each_hint_and_why() {
        let lines = explain(&fetch(Some(&["GET", "DELETE"])), &HintOverrides::default());
        assert_eq!(
            lines,
            [
                "read-only: no: fetch may send DELETE",
                "destructive: yes: fetch may send DELETE",
                "idempotent: no: fetch may send DELETE, so a repeated call may act again",
                "open world: yes: fetch reaches https://api.example.com/",
            ]
        );
    }
}
