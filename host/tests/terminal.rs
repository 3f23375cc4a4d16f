//! Terminal safety, end to end: text from a guest (log lines, stdout, stderr,
//! error texts, trap messages), a component (docs) or a toolkit (names,
//! descriptions, paths) carries terminal escapes, line breaks, C1 controls and
//! bidi overrides into every command of the real `airlock` binary, and none
//! reaches stdout or stderr raw; `--json` output still parses to the exact text.
//!
//! The guests are built by `cargo xtask build-guests` into
//! `<workspace>/target/wasm32-wasip2/release` (or `$AIRLOCK_GUESTS`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The attack: a title change (OSC 0), a hyperlink (OSC 8), a carriage
/// return, a forged `[info]` line, a C1 CSI, DEL and a right-to-left override.
const ATTACK: &str = "a\u{1b}]0;pwned\u{7}b \u{1b}]8;;https://evil.example/\u{1b}\\click\u{1b}]8;;\u{1b}\\ c\rd\n[info] forged \u{9b}2J \u{7f} \u{202e}txt.exe";

/// How [`ATTACK`] looks once escaped as one line.
const SHOWN: &str = "a\\x1b]0;pwned\\x07b \\x1b]8;;https://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\ c\\rd\\n[info] forged \\u009b2J \\u007f \\u202etxt.exe";

/// The part of [`SHOWN`] before the line break, for texts split into lines.
const SHOWN_HEAD: &str =
    "a\\x1b]0;pwned\\x07b \\x1b]8;;https://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\ c\\rd";

fn scratch() -> &'static Path {
    common::scratch()
}

fn guest(name: &str) -> String {
    common::guest_string(name)
}

/// Writes `text` to `name` in the scratch directory; returns the path.
fn write(name: &str, text: impl AsRef<[u8]>) -> String {
    let path = scratch().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .current_dir(scratch());
    cmd
}

/// Runs `airlock ARGS`, asserts the exit code; returns (stdout, stderr),
/// each checked with [`assert_safe`].
fn airlock(args: &[&str], code: i32) -> (String, String) {
    let out: Output = command(args).output().expect("cannot start airlock");
    let stdout = assert_safe(&out.stdout, "stdout");
    let stderr = assert_safe(&out.stderr, "stderr");
    assert_eq!(
        out.status.code(),
        Some(code),
        "--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// Asserts that `bytes` hold no character a terminal would act on (C0 but
/// `\n`, DEL, C1, bidi overrides and isolates) and no line that starts with
/// the forged `[info]`; returns them as text.
fn assert_safe(bytes: &[u8], what: &str) -> String {
    let text = String::from_utf8(bytes.to_vec()).expect("output is UTF-8");
    let bad = text.char_indices().find(|(_, c)| {
        matches!(*c, '\0'..='\x09' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    if let Some((at, c)) = bad {
        panic!("{what} has {c:?} at byte {at}:\n{}", text.escape_debug());
    }
    let forged = text
        .lines()
        .find(|l| l.trim_start().starts_with("[info] forged"));
    assert!(forged.is_none(), "{what} has a forged line:\n{text}");
    text
}

fn assert_has(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "want {needle:?} in:\n{haystack}");
}

/// A TOML basic string holding `s` exactly.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A toolkit with the `ansi` guest (granted `log`) described by [`ATTACK`].
fn ansi_kit() -> &'static str {
    static KIT: OnceLock<String> = OnceLock::new();
    KIT.get_or_init(|| {
        let kit = format!(
            "[tools.ansi]\ncomponent = {}\ndescription = {}\n[tools.ansi.grants.log]\n",
            toml_str(&guest("ansi")),
            toml_str(ATTACK)
        );
        write("ansi.toml", kit)
    })
}

fn echo_args(fail: bool) -> String {
    json!({ "text": ATTACK, "fail": fail }).to_string()
}

mod terminal {
    use super::*;

    #[test]
    fn run_shows_log_lines_and_captured_output_escaped() {
        let (wasm, args) = (guest("ansi"), echo_args(false));
        let (stdout, stderr) = airlock(&["run", &wasm, "--grant", "log", "--args", &args], 0);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines[0], format!("[info] {SHOWN}"), "{stderr}");
        assert!(
            lines.contains(&format!("stdout | {SHOWN_HEAD}").as_str()),
            "{stderr}"
        );
        assert!(
            lines.contains(&format!("stderr | {SHOWN_HEAD}").as_str()),
            "{stderr}"
        );
        assert!(lines.contains(&"stdout | [info] forged \\u009b2J \\u007f \\u202etxt.exe"));
        assert_eq!(lines.len(), 5, "{stderr}");
        // The result, printed as JSON, is still exactly the guest's text.
        let value: Value = serde_json::from_str(&stdout).expect("the result is JSON");
        assert_eq!(value, ATTACK);
    }

    #[test]
    fn run_shows_a_tools_error_text_escaped() {
        let (wasm, args) = (guest("ansi"), echo_args(true));
        let (stdout, stderr) = airlock(&["run", &wasm, "--grant", "log", "--args", &args], 1);
        assert!(stdout.is_empty(), "{stdout}");
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            format!("airlock: the tool returned an error: {SHOWN}")
        );
    }

    #[test]
    fn run_shows_a_trap_message_escaped() {
        let args = json!({ "message": ATTACK }).to_string();
        let (_, stderr) = airlock(&["run", &guest("panic"), "--args", &args], 5);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_has(&stderr, "airlock: the tool trapped (unreachable)");
        assert_has(&stderr, &format!("deliberate panic: {SHOWN_HEAD}"));
    }

    #[test]
    fn run_json_keeps_every_character_exactly() {
        let wasm = guest("ansi");
        let args = echo_args(false);
        let (stdout, _) = airlock(
            &["run", &wasm, "--grant", "log", "--json", "--args", &args],
            0,
        );
        let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
        assert_eq!(v["ok"], true, "{v}");
        for field in ["value", "stdout", "stderr"] {
            assert_eq!(v[field], ATTACK, "{field}");
        }
        assert_eq!(v["logs"][0]["message"], ATTACK);

        let args = echo_args(true);
        let (stdout, _) = airlock(
            &["run", &wasm, "--grant", "log", "--json", "--args", &args],
            1,
        );
        let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
        assert_eq!(v["error"]["detail"]["err"], ATTACK);
        let message = format!("the tool returned an error: {ATTACK}");
        assert_eq!(v["error"]["message"], message.as_str());
    }

    #[test]
    fn mcp_logs_guest_text_escaped_and_serves_it_exactly() {
        let stderr_path = scratch().join("mcp-stderr.txt");
        let mut child = command(&["mcp", ansi_kit()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("cannot start airlock mcp");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut send = |msg: Value| writeln!(stdin, "{msg}").unwrap();
        let mut answer = |id: u64| -> Value {
            let mut line = String::new();
            loop {
                line.clear();
                assert!(
                    stdout.read_line(&mut line).unwrap() > 0,
                    "the server hung up"
                );
                let v: Value = serde_json::from_str(&line).expect("a JSON-RPC line");
                if v["id"] == id {
                    return v;
                }
            }
        };
        send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "terminal-test", "version": "0"}}}),
        );
        answer(1);
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        for (id, fail) in [(2, false), (3, true)] {
            send(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": "ansi__echo", "arguments": {"text": ATTACK, "fail": fail}}}),
            );
            let result = &answer(id)["result"];
            // The protocol carries the guest's text exactly; only the terminal is guarded.
            let text = result["content"][0]["text"].as_str().unwrap_or_default();
            if fail {
                assert_eq!(result["isError"], true, "{result}");
                assert_eq!(text, format!("the tool returned an error: {ATTACK}"));
            } else {
                assert_eq!(serde_json::from_str::<Value>(text).unwrap(), ATTACK);
            }
        }
        send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}));
        let tools = answer(4);
        assert_eq!(tools["result"]["tools"][0]["name"], "ansi__echo", "{tools}");
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("airlock mcp did not end when its stdin closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = assert_safe(&std::fs::read(&stderr_path).unwrap(), "mcp stderr");
        assert_has(&stderr, &format!("[info] {SHOWN}\n"));
        assert_has(&stderr, "ansi__echo: tool-error in ");
        assert_has(
            &stderr,
            &format!(" ms: the tool returned an error: {SHOWN_HEAD}\n"),
        );
    }

    /// The `ansi` guest with a `package-docs` section (version 1) whose
    /// world and function docs are [`ATTACK`].
    fn documented_ansi() -> String {
        let docs = json!({"worlds": {"ansi": {
            "docs": ATTACK, "func_exports": {"echo": {"docs": ATTACK}}}}});
        let mut data = vec![1];
        data.extend(serde_json::to_vec(&docs).unwrap());
        let name = b"package-docs";
        let mut payload = vec![name.len() as u8];
        payload.extend(name);
        payload.extend(data);
        let mut wasm = std::fs::read(guest("ansi")).unwrap();
        wasm.push(0);
        let mut n = payload.len();
        while n >= 0x80 {
            wasm.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        wasm.push(n as u8);
        wasm.extend(payload);
        write("documented-ansi.wasm", wasm)
    }

    #[test]
    fn inspect_shows_component_docs_escaped() {
        let wasm = documented_ansi();
        let (stdout, _) = airlock(&["inspect", &wasm], 0);
        // Component docs are unreviewed text: `inspect` shows them with their
        // hidden characters removed (agent_text), and labelled as such.
        let shown =
            "a]0;pwnedb ]8;;https://evil.example/\\click]8;;\\ c d [info] forged 2J  txt.exe";
        assert_has(&stdout, &format!("\n  {shown}\n"));
        assert_has(&stdout, &format!("\n      {shown}\n"));
        assert_has(&stdout, "package-docs section (unreviewed text");

        let (stdout, _) = airlock(&["inspect", &wasm, "--json"], 0);
        let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
        let description = v["exports"][0]["description"].as_str().unwrap_or_default();
        assert_has(description, "]0;pwned");
        if description.contains('\u{1b}') {
            assert_has(description, "\u{1b}]0;pwned\u{7}b");
            assert_has(description, "\u{9b}2J \u{7f} \u{202e}txt.exe");
        }
    }

    #[test]
    fn explain_shows_toolkit_text_escaped() {
        let kit = format!(
            "{}\n[tools.missing]\ncomponent = {}\n",
            std::fs::read_to_string(ansi_kit()).unwrap(),
            toml_str(&format!("gone{ATTACK}.wasm"))
        );
        let kit = write("explain.toml", kit);
        let (stdout, _) = airlock(&["explain", &kit], 0);
        assert_has(&stdout, &format!("tool `ansi`\n  {SHOWN}\n"));
        assert_has(
            &stdout,
            &format!("  component: {}gone{SHOWN}.wasm\n", scratch_prefix()),
        );
        // The description, the component path and the read error naming that path.
        assert_eq!(stdout.matches("[info] forged").count(), 3, "{stdout}");
    }

    /// The directory a toolkit's relative paths are joined to, with a `/`.
    fn scratch_prefix() -> String {
        format!("{}/", scratch().display())
    }

    #[test]
    fn config_errors_show_toolkit_text_escaped() {
        let bad_name = write(
            "bad-name.toml",
            format!("[tools.{}]\ncomponent = \"x.wasm\"\n", toml_str(ATTACK)),
        );
        let want = format!("tool name `{SHOWN}` may use only letters");
        for argv in [
            vec!["explain", &bad_name],
            vec!["schema", &bad_name],
            vec!["mcp", &bad_name],
            vec!["run", "--toolkit", &bad_name, "--tool", "x"],
        ] {
            let (stdout, stderr) = airlock(&argv, 2);
            assert!(stdout.is_empty(), "{argv:?}: {stdout}");
            assert_eq!(stderr.lines().count(), 1, "{argv:?}: {stderr}");
            assert_has(&stderr, &want);
        }
        let argv = ["run", "--toolkit", &bad_name, "--tool", "x", "--json"];
        let (stdout, _) = airlock(&argv, 2);
        let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
        assert_has(v["error"]["message"].as_str().unwrap_or_default(), ATTACK);

        let bad_key = write(
            "bad-key.toml",
            format!(
                "[tools.a]\ncomponent = \"x.wasm\"\n{} = 1\n",
                toml_str(ATTACK)
            ),
        );
        let (_, stderr) = airlock(&["explain", &bad_key], 2);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_has(&stderr, SHOWN);

        // wit-parser quotes the offending source line, escapes and all.
        let wit_dir = scratch().join("evil-wit");
        std::fs::create_dir_all(&wit_dir).unwrap();
        let wit = format!("package airlock-guest:ansi;\n/// {ATTACK}\nworld ansi {{}}\n");
        std::fs::write(wit_dir.join("world.wit"), wit).unwrap();
        let kit = format!(
            "[tools.ansi]\ncomponent = {}\nwit = {}\n[tools.ansi.grants.log]\n",
            toml_str(&guest("ansi")),
            toml_str(&wit_dir.to_string_lossy())
        );
        let kit = write("evil-wit.toml", kit);
        for argv in [vec!["schema", &kit], vec!["mcp", &kit]] {
            let (_, stderr) = airlock(&argv, 2);
            assert_eq!(stderr.lines().count(), 1, "{argv:?}: {stderr}");
            assert_has(&stderr, "/// a\\x1b]0;pwned\\x07b");
        }
    }

    #[test]
    fn schema_prints_json_with_no_raw_controls() {
        for format in ["mcp", "openai", "anthropic"] {
            let (stdout, _) = airlock(&["schema", ansi_kit(), "--format", format], 0);
            let v: Value = serde_json::from_str(&stdout).expect("schema prints JSON");
            let text = v.to_string();
            assert_has(&text, "]0;pwned");
            // Whatever the description keeps of the attack, JSON keeps exactly.
            if text.contains('\u{1b}') {
                assert_has(&text, "\u{1b}]0;pwned\u{7}b");
            }
        }
    }

    #[test]
    fn audit_verify_shows_a_path_escaped() {
        let path = scratch().join(format!("trail{ATTACK}.jsonl"));
        let path = path.to_string_lossy().into_owned();
        let (_, stderr) = airlock(&["audit", "verify", &path], 2);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_has(&stderr, &format!("trail{SHOWN}.jsonl"));
    }

    #[test]
    fn demo_prints_no_raw_controls() {
        let (stdout, _) = airlock(&["demo"], 0);
        assert_has(&stdout, "tool log: ");
    }
}
