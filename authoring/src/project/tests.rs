//! Every language and verb combination renders, its world imports exactly
//! its verbs, its toolkit grants exactly them, and names are checked.

use super::*;

/// Every non-empty subset of the verbs.
fn combinations() -> Vec<Vec<Verb>> {
    (1u32..1 << Verb::ALL.len())
        .map(|mask| {
            Verb::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, v)| v)
                .collect()
        })
        .collect()
}

fn file<'a>(files: &'a [File], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == Path::new(path))
        .unwrap_or_else(|| panic!("no {path}"))
        .contents
}

/// The interfaces `world.wit` imports, parsed with the embedded verbs package.
fn imported_verbs(world_wit: &str, name: &str) -> Vec<String> {
    let mut resolve = wit_parser::Resolve::default();
    let mut deps = wit_parser::SourceMap::new();
    for (file, text) in crate::wit::VERBS_WIT {
        deps.push_str(file, *text);
    }
    resolve.push_group(deps.parse().unwrap()).unwrap();
    let mut map = wit_parser::SourceMap::new();
    map.push_str("world.wit", world_wit);
    let pkg = resolve
        .push_group(
            map.parse()
                .unwrap_or_else(|(_, e)| panic!("{e}\n{world_wit}")),
        )
        .unwrap_or_else(|e| panic!("{e}\n{world_wit}"));
    let world = resolve.packages[pkg].worlds[name];
    let mut verbs: Vec<String> = resolve.worlds[world]
        .imports
        .values()
        .filter_map(|item| match item {
            wit_parser::WorldItem::Interface { id, .. } => resolve.interfaces[*id].name.clone(),
            _ => None,
        })
        .filter(|name| name != "types")
        .collect();
    verbs.sort();
    verbs
}

#[test]
fn every_combination_imports_and_grants_exactly_its_verbs() {
    for lang in Lang::ALL {
        for verbs in combinations() {
            let project = Project::new("my-tool", lang, &verbs).unwrap();
            let files = project.files();
            let mut want: Vec<String> = verbs.iter().map(|v| v.name().to_string()).collect();
            want.sort();
            let world = file(&files, "wit/world.wit");
            assert_eq!(imported_verbs(world, "my-tool"), want, "{lang} {verbs:?}");

            let toolkit: toml::Table = toml::from_str(file(&files, "toolkit.toml")).unwrap();
            let tool = toolkit["tools"]["my-tool"].as_table().unwrap();
            assert_eq!(tool["component"].as_str(), Some(&*project.component_path()));
            let mut granted: Vec<String> =
                tool["grants"].as_table().unwrap().keys().cloned().collect();
            granted.sort();
            assert_eq!(granted, want, "{lang} {verbs:?}");

            let host_config = files.iter().find(|f| f.path == Path::new("airlock.toml"));
            let needs_config = verbs.contains(&Verb::Sign)
                || verbs.contains(&Verb::Complete)
                || verbs.contains(&Verb::Kv)
                || verbs.contains(&Verb::Sql);
            assert_eq!(host_config.is_some(), needs_config, "{lang} {verbs:?}");
            if let Some(config) = host_config {
                let config: toml::Table = toml::from_str(&config.contents).unwrap();
                assert_eq!(config.contains_key("sign"), verbs.contains(&Verb::Sign));
                assert_eq!(
                    config.contains_key("providers"),
                    verbs.contains(&Verb::Complete)
                );
                assert_eq!(config.contains_key("kv"), verbs.contains(&Verb::Kv));
                assert_eq!(config.contains_key("databases"), verbs.contains(&Verb::Sql));
            }

            // The code uses each verb it imports, and no other.
            let source = match lang {
                Lang::Rust => file(&files, "src/lib.rs"),
                Lang::Python => file(&files, "app.py"),
                Lang::Js => file(&files, "app.js"),
            };
            for verb in Verb::ALL {
                let call = match (lang, verb) {
                    (_, Verb::Log) => "emit(",
                    (Lang::Js, Verb::Sign) => "hmacSha256(",
                    (_, Verb::Sign) => "hmac_sha256(",
                    (_, Verb::Fetch) => "send(",
                    (_, Verb::Complete) => "chat(",
                    (Lang::Js, Verb::Kv) => "kvSet(",
                    (Lang::Rust, Verb::Kv) => "kv::set(",
                    (Lang::Python, Verb::Kv) => "kv.set(",
                    (_, Verb::Sql) => "query(",
                };
                assert_eq!(
                    source.contains(call),
                    verbs.contains(&verb),
                    "{lang} {verb:?}"
                );
            }
            assert!(!source.contains("{{"), "{source}");
        }
    }
}

#[test]
fn the_readme_has_build_run_and_serve_blocks() {
    for lang in Lang::ALL {
        let files = Project::new("hello", lang, &[Verb::Log]).unwrap().files();
        let readme = file(&files, "README.md");
        let blocks: Vec<&str> = readme.split("```sh\n").skip(1).collect();
        assert_eq!(blocks.len(), 3, "{readme}");
        assert!(blocks[1].starts_with("airlock run --toolkit toolkit.toml --tool hello"));
        assert!(blocks[2].starts_with("airlock mcp toolkit.toml\n```"));
        assert!(readme.contains("`hello__greet`"), "{readme}");
        // The default project needs no host config.
        assert!(!readme.contains("airlock.toml"), "{readme}");
    }
}

#[test]
fn the_rust_template_pins_the_guests_wit_bindgen() {
    let lock = include_str!("../../../guests/Cargo.lock");
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("name = \"wit-bindgen\"\n"))
        .filter_map(|p| p.split("version = \"").nth(1)?.split('"').next())
        .collect();
    assert!(
        versions.contains(&WIT_BINDGEN),
        "the guests use wit-bindgen {versions:?}; set project::WIT_BINDGEN to theirs"
    );
    let guests = include_str!("../../../guests/Cargo.toml");
    let minor = WIT_BINDGEN.rsplit_once('.').unwrap().0;
    assert!(
        guests.contains(&format!("wit-bindgen = \"{minor}\"")),
        "{guests}"
    );
    let files = Project::new("hello", Lang::Rust, &[Verb::Log])
        .unwrap()
        .files();
    let manifest = file(&files, "Cargo.toml");
    assert!(manifest.contains(&format!("wit-bindgen = \"={WIT_BINDGEN}\"")));
    assert!(manifest.trim_end().ends_with("[workspace]"), "{manifest}");
}

#[test]
fn names_are_checked() {
    for good in ["hello", "page-summary", "a1", "x-y2-z"] {
        validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for (bad, why) in [
        ("", "empty"),
        ("Hello", "'H'"),
        ("my_tool", "'_'"),
        ("-x", "starts or ends"),
        ("a--b", "two in a row"),
        ("1tool", "start with a letter"),
        ("a-2b", "start with a letter"),
        ("world", "keyword"),
        ("test", "reserved"),
        ("../x", "'.'"),
        (&"a".repeat(41), "longer than 40"),
    ] {
        let err = validate_name(bad).unwrap_err().to_string();
        assert!(
            err.contains(why) && err.contains("page-summary"),
            "{bad}: {err}"
        );
    }
    assert!(matches!(
        Project::new("hello", Lang::Rust, &[]),
        Err(Error::NoVerbs)
    ));
    assert!(matches!("kv".parse::<Verb>(), Ok(Verb::Kv)));
    assert!(matches!("shell".parse::<Verb>(), Err(Error::UnknownVerb(v)) if v == "shell"));
    assert!(matches!("go".parse::<Lang>(), Err(Error::UnknownLang(_))));
}

#[test]
fn create_writes_a_new_directory_only_and_a_private_key() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("signer");
    let project = Project::new("signer", Lang::Python, &[Verb::Sign, Verb::Log]).unwrap();
    let written = project.create(&dir).unwrap();
    assert!(written.contains(&PathBuf::from("signer.key")));
    let key = std::fs::read_to_string(dir.join("signer.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "{key}");
    assert!(key.trim().chars().all(|c| c.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("signer.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(dir.join("wit/deps/airlock-verbs/sign.wit").is_file());
    // A second key differs: it is random, not a constant in the template.
    let other = parent.path().join("other");
    project.create(&other).unwrap();
    assert_ne!(
        std::fs::read_to_string(other.join("signer.key")).unwrap(),
        key
    );

    let before = std::fs::read_to_string(dir.join("app.py")).unwrap();
    let err = project.create(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::Exists { path } if *path == dir),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("app.py")).unwrap(), before);
}
