//! Comparing two complete grants: another provider, a new model or a larger
//! limit widens; the reverse narrows; and properties over generated pairs.

use airlock_core::{Capability, ScopeChange};
use proptest::prelude::*;

use crate::{CompleteCapability, CompleteGrant};

fn lines(before: &CompleteGrant, after: &CompleteGrant) -> Vec<String> {
    CompleteCapability::compare(before, after)
        .into_iter()
        .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
        .collect()
}

fn widening(before: &CompleteGrant, after: &CompleteGrant) -> Vec<ScopeChange> {
    CompleteCapability::compare(before, after)
        .into_iter()
        .filter(|c| c.widens)
        .collect()
}

#[test]
fn every_field_widens_one_way_and_narrows_the_other() {
    let before = CompleteGrant::new("openai", ["gpt-4o-mini"]);
    assert!(CompleteCapability::compare(&before, &before).is_empty());
    let after = CompleteGrant {
        provider: "anthropic".into(),
        models: vec!["gpt-4o-mini".into(), "gpt-5".into()],
        max_tokens: 2048,
        max_total_tokens: 40_000,
        max_calls: 9,
        max_prompt_bytes: 256 * 1024 + 1,
    };
    assert_eq!(
        lines(&before, &after),
        [
            "W ~ complete provider openai → anthropic",
            "W + complete model gpt-5",
            "W ~ complete max_tokens 1024 → 2048",
            "W ~ complete max_total_tokens 20000 → 40000",
            "W ~ complete max_calls 8 → 9",
            "W ~ complete max_prompt_bytes 262144 → 262145",
        ]
    );
    assert_eq!(
        lines(&after, &before),
        [
            "W ~ complete provider anthropic → openai",
            "N - complete model gpt-5",
            "N ~ complete max_tokens 2048 → 1024",
            "N ~ complete max_total_tokens 40000 → 20000",
            "N ~ complete max_calls 9 → 8",
            "N ~ complete max_prompt_bytes 262145 → 262144",
        ]
    );
}

#[test]
fn reordering_models_changes_only_the_default() {
    let before = CompleteGrant::new("p", ["a", "b"]);
    let after = CompleteGrant::new("p", ["b", "a"]);
    assert_eq!(lines(&before, &after), ["N ~ complete default model a → b"]);
    let swapped = CompleteGrant::new("p", ["c"]);
    assert_eq!(
        lines(&before, &swapped),
        [
            "N - complete model a",
            "N - complete model b",
            "W + complete model c"
        ]
    );
}

#[test]
fn the_grant_round_trips_through_json() {
    let g = CompleteGrant {
        max_calls: 3,
        ..CompleteGrant::new("openai", ["gpt-5", "gpt-4o-mini"])
    };
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(serde_json::from_str::<CompleteGrant>(&json).unwrap(), g);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["api_key"] = "x".into();
    assert!(serde_json::from_value::<CompleteGrant>(v).is_err());
}

fn grant() -> impl Strategy<Value = CompleteGrant> {
    (
        prop::sample::select(vec!["openai", "anthropic"]),
        prop::sample::subsequence(vec!["a", "b", "c", "d"], 1..4),
        (1u32..5000, 1u64..100_000, 1u32..50, 1usize..1 << 20),
    )
        .prop_map(|(provider, models, (t, tt, c, p))| CompleteGrant {
            provider: provider.into(),
            models: models.into_iter().map(String::from).collect(),
            max_tokens: t,
            max_total_tokens: tt,
            max_calls: c,
            max_prompt_bytes: p,
        })
}

mod props {
    use super::*;

    proptest! {
        #[test]
        fn narrowing_never_widens_and_the_way_back_always_does(
            wide in grant(),
            keep in prop::collection::vec(any::<bool>(), 4),
            cuts in prop::collection::vec(any::<u16>(), 4),
            forced in 0usize..4,
        ) {
            prop_assert!(CompleteCapability::compare(&wide, &wide).is_empty());
            let mut narrow = wide.clone();
            let first = narrow.models[0].clone();
            let mut i = 0;
            narrow.models.retain(|m| { i += 1; *m == first || keep[i - 1] });
            let cut = |v: u64, k: usize| {
                let c = u64::from(cuts[k]) % (v + 1);
                v - if k == forced { c.max(1) } else { c }
            };
            narrow.max_tokens = cut(u64::from(wide.max_tokens), 0) as u32;
            narrow.max_total_tokens = cut(wide.max_total_tokens, 1);
            narrow.max_calls = cut(u64::from(wide.max_calls), 2) as u32;
            narrow.max_prompt_bytes = cut(wide.max_prompt_bytes as u64, 3) as usize;
            prop_assert!(widening(&wide, &narrow).is_empty(), "{:?}", lines(&wide, &narrow));
            prop_assert!(!widening(&narrow, &wide).is_empty());
        }

        #[test]
        fn grants_that_differ_widen_at_least_one_way(
            a in grant(),
            b in grant(),
        ) {
            let changes = CompleteCapability::compare(&a, &b);
            prop_assert_eq!(changes.is_empty(), a == b);
            let none_widen = widening(&a, &b).is_empty() && widening(&b, &a).is_empty();
            prop_assert_eq!(none_widen, a == b, "{:?} / {:?}", a, b);
        }
    }
}
