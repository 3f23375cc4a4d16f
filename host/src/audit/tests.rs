//! Attacks on the audit trail by its strongest attacker: a local writer of the
//! file who holds neither audit key and recomputes everything computable
//! without them (`seq`, `prev`), plus the writers' own guarantees.

use super::*;
use std::time::{Duration, SystemTime};

fn keys_from(mac: &str, seed: u8) -> Arc<AuditKeys> {
    Arc::new(
        AuditKeys::new(
            SecretSlice::from(mac.as_bytes().to_vec()),
            &SecretSlice::from(vec![seed; 32]),
        )
        .unwrap(),
    )
}

fn keys() -> Arc<AuditKeys> {
    keys_from("operator-audit-mac-key-0123456789", 7)
}

fn record(job: u64, decision: Decision) -> AuditRecord {
    AuditRecord {
        time: SystemTime::now(),
        job,
        tool: "t".into(),
        verb: "sign",
        op: "hmac-sha256",
        decision,
        duration: Duration::from_micros(5),
        detail: Some("key=webhook".into()),
        content: None,
    }
}

fn deny() -> Decision {
    Decision::Deny("denied: key".into())
}

/// A closed trail of `decisions`, one job each, checkpointed every 3 records.
fn trail(keys: Option<Arc<AuditKeys>>, decisions: &[Decision]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = JsonLinesAudit::to_file(&path, keys, 3).unwrap();
    for (job, d) in decisions.iter().enumerate() {
        sink.record(record(job as u64, d.clone()));
    }
    drop(sink);
    std::fs::read_to_string(&path).unwrap()
}

/// Seven records, the 2nd and 5th denied: anchor (1), records (2-4), `every`
/// (5), records (6-8), `every` (9), record (10), `close` (11).
fn seven() -> Vec<Decision> {
    use Decision::Allow;
    vec![Allow, deny(), Allow, Allow, deny(), Allow, Allow]
}

/// What an attacker without the keys can do after editing: renumber `seq`
/// and recompute every `prev` over the exact bytes of the line before.
fn recompute(lines: &[String]) -> String {
    let mut prev = [0u8; 32];
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rest = &line[line.find(',').unwrap()..];
        let mut fixed = format!("{{\"seq\":{}{rest}", i + 1);
        let at = fixed.find("\"prev\":\"").unwrap() + 8;
        fixed.replace_range(at..at + 64, &hex::encode(prev));
        prev = Sha256::digest(fixed.as_bytes()).into();
        out += &fixed;
        out.push('\n');
    }
    out
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(String::from).collect()
}

fn check_all(text: &str) -> [Result<Verified, ChainBreak>; 3] {
    let k = keys();
    [
        verify(text.as_bytes(), Checked::Chain),
        verify(text.as_bytes(), Checked::Signatures(k.public())),
        verify(text.as_bytes(), Checked::Keys(&k)),
    ]
}

fn broken_at(result: &Result<Verified, ChainBreak>, line: usize, reason: &str) {
    match result {
        Err(b) => {
            assert_eq!(b.line, line, "{b}");
            assert!(b.reason.contains(reason), "want {reason:?} in: {b}");
        }
        Ok(v) => panic!("verified: {v:?}"),
    }
}

#[test]
fn an_intact_keyed_trail_is_proven_complete_in_every_mode() {
    let text = trail(Some(keys()), &seven());
    for result in check_all(&text) {
        let v = result.unwrap();
        assert_eq!((v.lines, v.records, v.runs, v.checkpoints), (11, 7, 1, 3));
        assert!(v.keyed && v.complete(), "{v:?}");
        assert_eq!(v.gaps(), None);
        assert_eq!(v.last_checkpoint.as_ref().map(|c| c.0), Some(11));
    }
    let l = lines(&text);
    assert!(l[0].starts_with("{\"seq\":1,\"anchor\":"), "{}", l[0]);
    assert!(l[2].contains("\"decision\":\"deny\""), "{}", l[2]);
    assert!(l[4].contains("\"checkpoint\":\"every\""), "{}", l[4]);
    assert!(l[10].contains("\"checkpoint\":\"close\""), "{}", l[10]);
    let mac_key = format!("{:?}", keys());
    assert!(!mac_key.contains("operator-audit-mac"), "{mac_key}");
}

#[test]
fn a_deleted_record_and_a_flipped_denial_with_a_recomputed_chain_are_found() {
    let mut l = lines(&trail(Some(keys()), &seven()));
    l.remove(5); // the 4th record
    let flipped = l[5].replace(
        "\"decision\":\"deny\",\"reason\":\"denied: key\"",
        "\"decision\":\"allow\",\"reason\":null",
    );
    assert_ne!(flipped, l[5], "line 7 was the 5th record, a denial");
    l[5] = flipped;
    let forged = recompute(&l);
    let [chain, sigs, macs] = check_all(&forged);
    // The public chain alone cannot see it: the attacker recomputed it.
    assert_eq!(chain.unwrap().records, 6);
    broken_at(&macs, 6, "the mac does not verify");
    broken_at(
        &sigs,
        8,
        "the checkpoint's signature does not verify with the given public key: a line from \
         line 6 on was changed, removed or inserted",
    );

    // Dropping every checkpoint too leaves nothing signed.
    let no_checkpoints: Vec<String> = l
        .into_iter()
        .filter(|x| !x.contains("checkpoint"))
        .collect();
    let forged = recompute(&no_checkpoints);
    let k = keys();
    let v = verify(forged.as_bytes(), Checked::Signatures(k.public())).unwrap();
    assert_eq!(
        v.gaps().as_deref(),
        Some(
            "no signed checkpoint: none of its 6 verb-call records is proven; the run that \
             began at line 1 has no closing checkpoint (a host still running or killed, or a \
             trail whose end was removed)"
        )
    );
    broken_at(
        &verify(forged.as_bytes(), Checked::Keys(&k)),
        5,
        "the mac does not verify",
    );
}

#[test]
fn a_line_rewritten_with_escapes_or_a_duplicate_key_is_found() {
    let l = lines(&trail(Some(keys()), &seven()));
    let rewrites = [
        l[1].replace("\"tool\":\"t\"", "\"tool\":\"\\u0074\""),
        l[1].replace("\"tool\":\"t\"", "\"tool\":\"t\",\"tool\":\"t\""),
        l[1].replace("\"op\":\"hmac-sha256\"", "\"op\":\"hmac-sha256\" "),
    ];
    for rewritten in rewrites {
        assert_ne!(rewritten, l[1]);
        let value: serde_json::Value = serde_json::from_str(&rewritten).unwrap();
        assert_eq!(value["tool"], "t", "the meaning is unchanged: {rewritten}");
        let mut edited = l.clone();
        edited[1] = rewritten;
        for forged in [edited.join("\n") + "\n", recompute(&edited)] {
            for result in check_all(&forged) {
                broken_at(&result, 2, "not in the exact form airlock writes");
            }
        }
    }
    // The mac's own hex in upper case: same bytes to a lax reader, not to us.
    let mut edited = l.clone();
    let at = edited[1].len() - 66;
    let upper = edited[1][at..].to_uppercase();
    edited[1].replace_range(at.., &upper);
    for result in check_all(&(edited.join("\n") + "\n")) {
        broken_at(&result, 2, "`mac` is not the last field");
    }
}

#[test]
fn a_trail_cut_after_a_checkpoint_is_unproven_and_says_so() {
    let l = lines(&trail(Some(keys()), &seven()));
    let k = keys();
    let cut = |n: usize| l[..n].join("\n") + "\n";
    // The closing checkpoint removed: the last record is unproven.
    let v = verify(cut(10).as_bytes(), Checked::Signatures(k.public())).unwrap();
    assert_eq!(
        v.gaps().as_deref(),
        Some(
            "1 verb-call record after the last signed checkpoint (line 9) is unproven; the run \
             that began at line 1 has no closing checkpoint (a host still running or killed, or \
             a trail whose end was removed)"
        )
    );
    assert_eq!((v.unproven, v.unclosed.clone()), (1, vec![1]));
    // Cut right after a checkpoint: every line left is proven, the run unclosed.
    let v = verify(cut(9).as_bytes(), Checked::Keys(&k)).unwrap();
    assert_eq!(
        v.gaps().as_deref(),
        Some(
            "the run that began at line 1 has no closing checkpoint (a host still running or \
             killed, or a trail whose end was removed)"
        )
    );
    // Cut mid-line.
    let torn = &cut(10)[..cut(10).len() - 20];
    broken_at(&verify(torn.as_bytes(), Checked::Chain), 10, "incomplete");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    // The attacker writes the trail they want with keys of their own.
    let attacker = keys_from("attacker-audit-mac-key-0123456789", 9);
    let forged = trail(Some(attacker.clone()), &[Decision::Allow, Decision::Allow]);
    assert!(verify(forged.as_bytes(), Checked::Keys(&attacker)).is_ok());
    let [_, sigs, macs] = check_all(&forged);
    broken_at(&sigs, 4, "does not verify with the given public key");
    broken_at(&macs, 1, "the mac does not verify");

    // A genuine trail whose checkpoint's signature is swapped for another's.
    let genuine = lines(&trail(Some(keys()), &seven()));
    let other = lines(&forged);
    let sig = |line: &str| {
        line[line.find(",\"sig\":").unwrap()..line.find(",\"mac\":").unwrap()].to_string()
    };
    let mut swapped = genuine.clone();
    swapped[4] = genuine[4].replace(&sig(&genuine[4]), &sig(&other[3]));
    broken_at(
        &check_all(&recompute(&swapped))[1],
        5,
        "another key signed it",
    );
}

#[test]
fn sinks_on_one_file_continue_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Strictly alternating writers: each must re-read the other's last line.
    let a = JsonLinesAudit::to_file(&path, Some(keys()), 4).unwrap();
    let b = JsonLinesAudit::to_file(&path, Some(keys()), 4).unwrap();
    for job in 0..10 {
        a.record(record(job, Decision::Allow));
        b.record(record(job, deny()));
    }
    drop((a, b));
    // Threads, each with a sink of its own, all at once.
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let sink = JsonLinesAudit::to_file(&path, Some(keys()), 7).unwrap();
                barrier.wait();
                for job in 0..150 {
                    sink.record(record(job, Decision::Allow));
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let k = keys();
    let v = verify(text.as_bytes(), Checked::Keys(&k)).unwrap();
    assert_eq!((v.records, v.runs), (20 + 600, 6), "{v:?}");
    assert!(v.complete(), "{:?}", v.gaps());
}

#[test]
fn an_unkeyed_trail_verifies_as_a_chain_only() {
    let text = trail(None, &seven());
    let [chain, sigs, macs] = check_all(&text);
    let v = chain.unwrap();
    assert_eq!((v.records, v.runs, v.keyed), (7, 1, false));
    let v = sigs.unwrap();
    assert!(
        v.gaps()
            .unwrap()
            .starts_with("no signed checkpoint: none of its 7"),
        "{v:?}"
    );
    broken_at(&macs, 1, "carries no mac");
    // The chain alone still finds a careless edit.
    let careless = text.replacen("\"job\":1", "\"job\":9", 1);
    broken_at(
        &verify(careless.as_bytes(), Checked::Chain),
        4,
        "`prev` does not match",
    );
}

#[test]
fn a_closed_sink_opens_a_new_run_for_late_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = JsonLinesAudit::to_file(&path, Some(keys()), 100).unwrap();
    sink.record(record(1, Decision::Allow));
    sink.close();
    sink.record(record(2, Decision::Allow));
    drop(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    let k = keys();
    let v = verify(text.as_bytes(), Checked::Keys(&k)).unwrap();
    assert_eq!((v.records, v.runs, v.checkpoints), (2, 2, 2));
    assert!(v.complete());
}

#[test]
fn an_older_trail_is_read_but_never_appended_to() {
    // Two lines of the earlier, unkeyed format.
    let zero = hex::encode([0u8; 32]);
    let mut text = String::new();
    let mut prev = zero;
    for body in [r#""anchor":"ab""#, r#""job":1,"verb":"sign""#] {
        let without = format!("{{{body},\"prev\":\"{prev}\"}}");
        let hash = hex::encode(Sha256::digest(without.as_bytes()));
        text += &format!("{{{body},\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}\n");
        prev = hash;
    }
    let v = verify(text.as_bytes(), Checked::Chain).unwrap();
    assert_eq!((v.legacy, v.records, v.runs), (true, 1, 1));
    assert!(v.gaps().unwrap().contains("older airlock"));
    // It proves nothing, so a check that promises proof refuses it.
    broken_at(
        &verify(text.as_bytes(), Checked::Signatures(keys().public())),
        1,
        "older, unkeyed format",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, &text).unwrap();
    let e = JsonLinesAudit::to_file(&path, Some(keys()), 3)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("not in the format this airlock writes"),
        "{e}"
    );
    std::fs::write(&path, &text[..text.len() - 3]).unwrap();
    let e = JsonLinesAudit::to_file(&path, Some(keys()), 3)
        .err()
        .unwrap();
    assert!(e.to_string().contains("last line is incomplete"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        text.len() - 3,
        "nothing appended"
    );
}

#[test]
fn audit_keys_are_secrets_of_their_own_and_come_in_pairs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [("m", "audit-mac-key-0123456789"), ("s", &"07".repeat(32))] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let path = dir.path().join("airlock.toml");
    let secrets = "[secrets.m]\nfile = \"m\"\n[secrets.s]\nfile = \"s\"\n";
    let audit = "[audit]\nfile = \"a.jsonl\"\nkey = \"m\"\nsigning_key = \"s\"\n";
    let parse = |extra: &str| {
        crate::HostConfig::parse(&format!("{secrets}{extra}"), &path).map_err(|e| e.to_string())
    };
    // A tool granted a signing key computes HMACs with it: it must never be
    // the trail's key, nor a provider's or a fetch credential's secret.
    for shared in [
        "[sign.keys.k]\nkind = \"hmac-sha256\"\nsecret = \"m\"\n",
        "[sign.keys.k]\nkind = \"ed25519\"\nsecret = \"s\"\n",
        "[fetch.credentials.c]\nsecret = \"m\"\nheader = \"Authorization\"\nurls = [\"https://api.example.com/*\"]\n",
        // Another name for the same bytes (the same file read twice) is the same secret.
        "[secrets.alias]\nfile = \"m\"\n[sign.keys.k]\nkind = \"hmac-sha256\"\nsecret = \"alias\"\n",
    ] {
        let e = parse(&format!("{shared}{audit}")).unwrap_err();
        assert!(e.contains("a tool could forge or leak the trail"), "{e}");
    }
    let e = parse("[audit]\nkey = \"m\"\n").unwrap_err();
    assert!(e.contains("needs both `key`"), "{e}");
    let e = parse("[audit]\nkey = \"m\"\nsigning_key = \"m\"\n").unwrap_err();
    assert!(e.contains("name the same secret"), "{e}");
    let e = parse(&format!("{audit}checkpoint_every = 0\n")).unwrap_err();
    assert!(e.contains("checkpoint_every must be at least 1"), "{e}");

    let debug = format!("{:?}", parse(audit).unwrap());
    assert!(!debug.contains("audit-mac-key"), "{debug}");

    // `load_audit` resolves only the audit secrets (`unset` is never read).
    let unset = "[secrets.unset]\nenv = \"AIRLOCK_TEST_AUDIT_SURELY_UNSET_5\"\n";
    std::fs::write(&path, format!("{secrets}{unset}{audit}")).unwrap();
    assert!(crate::HostConfig::load(&path).is_err());
    let settings = crate::HostConfig::load_audit(&path).unwrap();
    assert_eq!(settings.file, Some(dir.path().join("a.jsonl")));
    assert_eq!(settings.checkpoint_every, DEFAULT_CHECKPOINT_EVERY);
    let public = settings.keys.unwrap().public();
    assert_eq!(public, keys().public(), "the seed 07..07 of `keys()`");
}

/// A writer of the file cuts lines from a live host's trail, or appends a
/// well-formed line with `seq` and `prev` recomputed but no valid mac: the
/// host writes nothing more rather than continue (and later sign) a chain it
/// cannot vouch for, and a keyed host does not start on such a trail either.
#[test]
fn a_live_host_never_chains_onto_a_cut_or_forged_trail() {
    let dir = tempfile::tempdir().unwrap();

    let cut = dir.path().join("cut.jsonl");
    let sink = JsonLinesAudit::to_file(&cut, Some(keys()), 100).unwrap();
    sink.record(record(1, Decision::Allow));
    sink.record(record(2, deny()));
    let text = std::fs::read_to_string(&cut).unwrap();
    let kept: String = lines(&text)[..2].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, &kept).unwrap();
    sink.record(record(3, Decision::Allow));
    drop(sink);
    assert_eq!(
        std::fs::read_to_string(&cut).unwrap(),
        kept,
        "chained onto a cut trail"
    );

    let forged = dir.path().join("forged.jsonl");
    let sink = JsonLinesAudit::to_file(&forged, Some(keys()), 100).unwrap();
    sink.record(record(1, deny()));
    let mut all = lines(&std::fs::read_to_string(&forged).unwrap());
    // The denial, copied as an allowed call of another job, its mac copied too.
    let fake = all[1]
        .replace("\"deny\"", "\"allow\"")
        .replace("\"job\":1", "\"job\":9");
    all.push(fake);
    let text = recompute(&all);
    std::fs::write(&forged, &text).unwrap();
    sink.record(record(2, Decision::Allow));
    drop(sink);
    assert_eq!(
        std::fs::read_to_string(&forged).unwrap(),
        text,
        "chained onto a forgery"
    );
    let e = JsonLinesAudit::to_file(&forged, Some(keys()), 100)
        .err()
        .unwrap();
    assert!(e.to_string().contains("no mac that verifies"), "{e}");
    broken_at(
        &verify(text.as_bytes(), Checked::Keys(&keys())),
        3,
        "the mac does not verify",
    );
}

/// Whoever can write the trail's directory cannot aim the host at another
/// file through a link, nor at a FIFO.
#[test]
fn the_trail_is_never_opened_through_a_link_or_as_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    assert!(JsonLinesAudit::to_file(&link, Some(keys()), 3).is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let fifo = dir.path().join("fifo.jsonl");
    crate::files::mkfifo(&fifo);
    let e = JsonLinesAudit::to_file(&fifo, Some(keys()), 3)
        .err()
        .unwrap();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}
