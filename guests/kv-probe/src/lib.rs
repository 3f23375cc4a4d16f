//! Kv probe: runs kv operations through the host's `kv` verb and returns the
//! verb's results unchanged (`run`), and tries every namespace escape it
//! knows (`escape`), reporting whatever it managed to see.

wit_bindgen::generate!({
    world: "airlock-guest:kv-probe/kv-probe",
    path: ["../../wit", "wit"],
    generate_all,
});

use airlock::verbs::kv;

/// The tool.
struct KvProbe;

fn one(op: Op) -> Result<Reply, Error> {
    Ok(match op {
        Op::Get(key) => {
            Reply::Value(kv::get(&key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
        }
        Op::Set(e) => {
            kv::set(&e.key, e.value.as_bytes())?;
            Reply::Done
        }
        Op::Delete(key) => Reply::Deleted(kv::delete(&key)?),
        Op::Scan(s) => Reply::Page(kv::list(&s.prefix, s.cursor.as_deref(), s.limit)?),
    })
}

impl Guest for KvProbe {
    fn run(ops: Vec<Op>) -> Vec<Result<Reply, Error>> {
        ops.into_iter().map(one).collect()
    }

    fn escape(target: String, key: String) -> Vec<String> {
        let mut seen = Vec::new();
        let keys = [
            format!("../{target}/{key}"),
            format!("../../{target}/{key}"),
            format!("{target}/{key}"),
            format!("/{target}/{key}"),
            format!("{target}:{key}"),
            format!("{target}\0{key}"),
            format!("{key}\0"),
            format!("{target}%"),
            "%".to_string(),
            "_".repeat(key.len()),
            format!("{key}' OR '1'='1"),
            format!("{key}\"; DROP TABLE airlock_kv; --"),
            format!("{}{key}", "../".repeat(200)),
            key.clone(),
        ];
        for k in &keys {
            if let Ok(Some(v)) = kv::get(k) {
                seen.push(format!("get {k:?} = {}", String::from_utf8_lossy(&v)));
            }
            // Overwrite or delete the victim's key from here: both must
            // stay inside this namespace.
            let _ = kv::delete(k);
        }
        let prefixes = [
            String::new(),
            "%".to_string(),
            "_".to_string(),
            format!("../{target}"),
            format!("{target}/"),
            format!("{target}\0"),
            "\\".to_string(),
        ];
        for p in &prefixes {
            let mut cursor: Option<String> = None;
            for _ in 0..10 {
                match kv::list(p, cursor.as_deref(), 0) {
                    Ok(page) => {
                        for k in page.keys {
                            seen.push(format!("list {p:?} -> {k}"));
                        }
                        match page.next {
                            Some(n) => cursor = Some(n),
                            None => break,
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // A cursor below every key of any namespace.
        if let Ok(page) = kv::list("", Some(" "), 0) {
            for k in page.keys {
                seen.push(format!("list cursor \" \" -> {k}"));
            }
        }
        seen
    }
}

export!(KvProbe);
