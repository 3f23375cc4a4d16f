//! Portable tool names: what MCP clients and the OpenAI/Anthropic APIs call
//! each exported function of a toolkit. Every client accepts
//! `^[a-zA-Z0-9_]{1,64}$`, so `word-count.count` (tool `word-count`, function
//! `count`) is offered as `word_count__count`, and the human form becomes the
//! tool's `title`.
//!
//! The default name is the tool's name and the function's name joined by
//! `__`, with every `-` and `.` written `_`. A toolkit may choose a function's
//! name itself (`[tools.NAME.functions.FUNC] name = "..."`). Names are checked
//! against the pattern, and two functions that end up with the same name stop
//! the toolkit with an error naming both and how to rename one.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{ToolSpec, Toolkit};
use crate::describe::{DescribeError, ToolDescription};

/// Longest tool name any client accepts (OpenAI, Anthropic, Claude, Cursor).
pub const NAME_MAX: usize = 64;

/// `[tools.NAME.functions.FUNC]`: what a toolkit says about one function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The name offered to agents instead of the default `TOOL__FUNCTION`.
    #[serde(default)]
    pub name: Option<String>,
}

/// The name agents call `function` of tool `spec` by: the toolkit's choice
/// (`[tools.NAME.functions.FUNC] name`), else [`portable`].
pub fn offered(spec: &ToolSpec, function: &str) -> String {
    spec.functions
        .get(function)
        .and_then(|f| f.name.clone())
        .unwrap_or_else(|| portable(&spec.name, function))
}

/// The default portable name of `function` of `tool`: both joined by `__`,
/// every `-` and `.` written `_` (`word-count`, `count` -> `word_count__count`).
pub fn portable(tool: &str, function: &str) -> String {
    let fold = |s: &str| s.replace(['-', '.'], "_");
    format!("{}__{}", fold(tool), fold(function))
}

/// Checks `name` against `^[a-zA-Z0-9_]{1,64}$`; the error says what is wrong.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "contains {c:?}; tool names may use only ASCII letters, digits and `_`"
        ));
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "is {} characters long; clients accept at most {NAME_MAX}",
            name.len()
        ));
    }
    Ok(())
}

/// Gives the descriptions of tool `spec` their final names: the toolkit's
/// own `[tools.NAME.functions.FUNC] name` where it sets one, the default
/// otherwise, each checked against the pattern.
pub fn assign(spec: &ToolSpec, descriptions: &mut [ToolDescription]) -> Result<(), DescribeError> {
    for function in spec.functions.keys() {
        if !descriptions.iter().any(|d| &d.function == function) {
            let exported: Vec<&str> = descriptions.iter().map(|d| d.function.as_str()).collect();
            return Err(DescribeError::Docs {
                tool: spec.name.clone(),
                reason: format!(
                    "[tools.{}.functions.{function}] names a function the component does not \
                     export; it exports: {}",
                    spec.name,
                    exported.join(", ")
                ),
            });
        }
    }
    for d in descriptions.iter_mut() {
        let chosen = spec
            .functions
            .get(&d.function)
            .is_some_and(|f| f.name.is_some());
        d.name = offered(spec, &d.function);
        if let Err(why) = check(&d.name) {
            let fix = if chosen {
                "change it".to_string()
            } else {
                format!(
                    "shorten the tool's name, or set one with [tools.{}.functions.{}] name = \"...\" \
                     in the toolkit",
                    d.tool, d.function
                )
            };
            return Err(DescribeError::Name {
                name: d.title.clone(),
                reason: format!("is offered as `{}`, which {why}: {fix}", d.name),
            });
        }
    }
    Ok(())
}

/// Refuses two functions offered under one name, naming both and the fix.
pub fn check_unique<'a>(
    descriptions: impl IntoIterator<Item = &'a ToolDescription>,
) -> Result<(), DescribeError> {
    let mut seen: BTreeMap<&str, &ToolDescription> = BTreeMap::new();
    for d in descriptions {
        if let Some(other) = seen.insert(&d.name, d) {
            return Err(DescribeError::Name {
                name: other.title.clone(),
                reason: format!(
                    "and `{}` would both be offered as `{}`; give one of them another name with \
                     [tools.{}.functions.{}] name = \"...\" in the toolkit, or rename a tool",
                    d.title, d.name, d.tool, d.function
                ),
            });
        }
    }
    Ok(())
}

/// The tool and function a portable name stands for in `kit`: a name the
/// toolkit chose, or a default one (`word_count__count`: the tool whose name
/// folds to `word_count`, function `count`, since WIT function names use `-`
/// where the portable name has `_`). `None` when no tool, or more than one,
/// matches.
pub fn resolve<'a>(kit: &'a Toolkit, name: &str) -> Option<(&'a ToolSpec, String)> {
    for spec in kit.tools.values() {
        for (function, f) in &spec.functions {
            if f.name.as_deref() == Some(name) {
                return Some((spec, function.clone()));
            }
        }
    }
    let (tool, function) = name.rsplit_once("__")?;
    let function = function.replace('_', "-");
    let mut matching = kit.tools.values().filter(|s| {
        portable(&s.name, &function) == name
            && s.functions.get(&function).is_none_or(|f| f.name.is_none())
    });
    let spec = matching.next()?;
    if matching.next().is_some() || tool.is_empty() {
        return None;
    }
    Some((spec, function))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn description(tool: &str, function: &str) -> ToolDescription {
        ToolDescription {
            name: String::new(),
            title: format!("{tool}.{function}"),
            tool: tool.into(),
            function: function.into(),
            description: String::new(),
            input_schema: serde_json::json!({}),
            output_schema: serde_json::json!({}),
            wraps_output: false,
            annotations: None,
        }
    }

    fn spec(toml: &str, tool: &str) -> ToolSpec {
        crate::Toolkit::parse(toml, Path::new("kit.toml"))
            .unwrap()
            .tool(tool)
            .unwrap()
            .clone()
    }

    #[test]
    fn default_names_fold_dashes_and_dots_and_join_with_two_underscores() {
        assert_eq!(portable("word-count", "count"), "word_count__count");
        assert_eq!(
            portable("sign-webhook", "world-view"),
            "sign_webhook__world_view"
        );
        assert_eq!(portable("a_b", "c"), "a_b__c");
        assert!(check(&portable("word-count", "count")).is_ok());
    }

    #[test]
    fn the_pattern_is_ascii_word_characters_one_to_sixty_four() {
        assert!(check("a").is_ok());
        assert!(check(&"x".repeat(64)).is_ok());
        let e = check(&"x".repeat(65)).unwrap_err();
        assert!(
            e.contains("65 characters") && e.contains("at most 64"),
            "{e}"
        );
        for bad in ["a.b", "a-b", "a b", "é", "a/b"] {
            assert!(
                check(bad).unwrap_err().contains("only ASCII letters"),
                "{bad}"
            );
        }
        assert_eq!(check(""), Err("is empty".into()));
    }

    #[test]
    fn a_toolkit_may_name_a_function_and_the_name_is_checked() {
        let kit = "[tools.word-count]\ncomponent = 'w.wasm'\n\
                   [tools.word-count.functions.count]\nname = 'wc'\n";
        let mut d = vec![description("word-count", "count")];
        assign(&spec(kit, "word-count"), &mut d).unwrap();
        assert_eq!(d[0].name, "wc");
        assert_eq!(d[0].title, "word-count.count");
        // A function the component does not export.
        let kit = "[tools.t]\ncomponent = 'w.wasm'\n[tools.t.functions.nope]\nname = 'x'\n";
        let e = assign(&spec(kit, "t"), &mut [description("t", "count")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[tools.t.functions.nope]") && e.contains("it exports: count"),
            "{e}"
        );
    }

    #[test]
    fn a_name_the_toolkit_chose_is_checked_at_load() {
        for (bad, why) in [("word-count", "contains '-'"), ("", "is empty")] {
            let kit = format!(
                "[tools.t]\ncomponent = 'w.wasm'\n[tools.t.functions.count]\nname = '{bad}'\n"
            );
            let e = crate::Toolkit::parse(&kit, Path::new("kit.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("kit.toml: [tools.t.functions.count] name = ") && e.contains(why),
                "{e}"
            );
        }
        let e = crate::Toolkit::parse(
            "[tools.t]\ncomponent = 'w.wasm'\n[tools.t.functions.count]\ntitle = 'x'\n",
            Path::new("kit.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `title`"), "{e}");
    }

    #[test]
    fn a_name_over_sixty_four_characters_says_how_to_rename() {
        let long = "t".repeat(62);
        let kit = format!("[tools.{long}]\ncomponent = 'w.wasm'\n");
        let mut d = vec![description(&long, "count")];
        let e = assign(&spec(&kit, &long), &mut d).unwrap_err().to_string();
        assert!(e.contains(&format!("`{long}.count`")), "{e}");
        assert!(e.contains("69 characters"), "{e}");
        assert!(
            e.contains(&format!("[tools.{long}.functions.count] name = ")),
            "{e}"
        );
        // The toolkit's own name makes it fit.
        let kit = format!("{kit}[tools.{long}.functions.count]\nname = 'count'\n");
        assign(&spec(&kit, &long), &mut d).unwrap();
        assert_eq!(d[0].name, "count");
    }

    #[test]
    fn a_portable_name_maps_back_to_its_tool_and_function() {
        let kit = crate::Toolkit::parse(
            "[tools.word-count]\ncomponent = 'w.wasm'\n\
             [tools.sign-webhook]\ncomponent = 's.wasm'\n\
             [tools.sign-webhook.functions.verify]\nname = 'check_signature'\n",
            Path::new("kit.toml"),
        )
        .unwrap();
        let found = |n: &str| resolve(&kit, n).map(|(s, f)| (s.name.clone(), f));
        assert_eq!(
            found("word_count__count"),
            Some(("word-count".into(), "count".into()))
        );
        assert_eq!(
            found("sign_webhook__world_view"),
            Some(("sign-webhook".into(), "world-view".into()))
        );
        assert_eq!(
            found("check_signature"),
            Some(("sign-webhook".into(), "verify".into()))
        );
        // Renamed: the default name no longer stands for it.
        assert_eq!(found("sign_webhook__verify"), None);
        assert_eq!(found("nope__count"), None);
        assert_eq!(found("word_count"), None);
    }

    #[test]
    fn two_functions_under_one_name_are_refused_naming_both() {
        let mut a = description("word-count", "count");
        let mut b = description("word_count", "count");
        a.name = portable(&a.tool, &a.function);
        b.name = portable(&b.tool, &b.function);
        let e = check_unique(&[a.clone(), b]).unwrap_err().to_string();
        assert!(
            e.contains("`word-count.count` and `word_count.count` would both be offered as `word_count__count`"),
            "{e}"
        );
        assert!(
            e.contains("[tools.word_count.functions.count] name = "),
            "{e}"
        );
        let mut c = description("other", "f");
        c.name = "word_count__count".into();
        assert!(check_unique(&[a.clone(), c]).is_err());
        let mut d = description("other", "f");
        d.name = portable("other", "f");
        assert!(check_unique(&[a, d]).is_ok());
    }
}
