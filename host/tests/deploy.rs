//! The deployment files (`deploy/Dockerfile`, `deploy/kubernetes/airlock.yaml`)
//! agree with what `airlock serve` accepts: the container's flags and
//! config path, its port, probe paths, Service target, HPA target, the
//! hardening the README promises (non-root, read-only root file system),
//! and a drain shorter than the grace period. Then the manifest's own host
//! config and toolkit are served with the manifest's own arguments (on
//! loopback) and its probes are asked.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn manifests() -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/airlock.yaml")).unwrap();
    YamlLoader::load_from_str(&text).expect("the manifests are YAML")
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifests"))
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// `--flag VALUE` from `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].as_str())
}

/// The JSON array of a Dockerfile instruction (`CMD [...]`).
fn docker(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    serde_json::from_str(&line[instruction.len()..]).expect("an exec-form JSON array")
}

#[test]
fn the_manifests_and_the_dockerfile_match_what_airlock_serve_accepts() {
    let docs = manifests();
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strs(&container["args"]);
    assert_eq!(args[0], "serve");
    let config = &args[1];
    assert!(config.starts_with('/'), "{config}");

    // Every flag is one `airlock serve` knows.
    let help = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(a.as_str()),
            "airlock serve has no {a}:\n{help}"
        );
    }
    let listen: std::net::SocketAddr = flag(&args, "--listen").unwrap().parse().unwrap();
    assert_eq!(flag(&args, "--audit"), Some("-"), "audit lines on stdout");

    // The port, the probes and the Service agree.
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_i64(),
        Some(i64::from(listen.port()))
    );
    let port_name = port["name"].as_str().unwrap();
    for (probe, path) in [
        ("livenessProbe", airlock::serve::HEALTH_PATH),
        ("readinessProbe", airlock::serve::READY_PATH),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe}");
    }
    let service = kind(&docs, "Service");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some(port_name)
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(service["spec"]["selector"], *labels);
    let hpa = kind(&docs, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"].as_str(),
        deployment["metadata"]["name"].as_str()
    );
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(
        container["resources"]["limits"]["memory"]
            .as_str()
            .is_some()
    );

    // Hardened: non-root, read-only root file system, nothing to escalate.
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);

    // The writable paths (cache, cache key) are volumes, and the config
    // and toolkits are mounted where the arguments look.
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["mountPath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mounted = |p: &str| mounts.iter().any(|(_, m)| p.starts_with(m.as_str()));
    let env: Vec<(String, String)> = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, value) in &env {
        assert!(mounted(value), "{name}={value} is on the read-only root");
    }
    assert!(mounted(config), "{config} is not mounted");

    // The Dockerfile runs the same command as the same non-root user.
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert_eq!(
        docker(&dockerfile, "ENTRYPOINT"),
        ["/usr/local/bin/airlock"]
    );
    assert_eq!(docker(&dockerfile, "CMD"), args);
    assert!(dockerfile.contains("USER nonroot"));
    assert!(dockerfile.contains(&format!("EXPOSE {}", listen.port())));
    for (name, value) in &env {
        assert!(
            dockerfile.contains(&format!("{name}={value}")),
            "the image's {name} differs from the manifest's"
        );
    }

    // The drain ends before Kubernetes kills the pod.
    let secret = kind(&docs, "Secret");
    let host_config = secret["stringData"]["airlock.toml"].as_str().unwrap();
    let drain: toml::Value = toml::from_str(host_config).unwrap();
    let drain = humantime::parse_duration(drain["serve"]["drain"].as_str().unwrap()).unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        drain < Duration::from_secs(grace as u64),
        "{drain:?} vs {grace} s"
    );
}

/// The manifest's host config and toolkit, laid out under `root` as the
/// volumes mount them; the image's tools are the built guests.
fn materialize(root: &Path) -> Vec<String> {
    let docs = manifests();
    let container = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let secret = kind(&docs, "Secret");
    let configmap = kind(&docs, "ConfigMap");
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    let tools = common::guests_dir();
    for m in container["volumeMounts"].as_vec().unwrap() {
        let dir = under(m["mountPath"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let files = match m["name"].as_str().unwrap() {
            "config" => &secret["stringData"],
            "toolkits" => &configmap["data"],
            _ => continue,
        };
        for (name, content) in files.as_hash().unwrap() {
            let content = content
                .as_str()
                .unwrap()
                .replace("/opt/airlock/tools/", &format!("{}/", tools.display()));
            std::fs::write(dir.join(name.as_str().unwrap()), content).unwrap();
        }
    }
    let mut args = strs(&container["args"]);
    args[1] = under(&args[1]).display().to_string();
    // Loopback here: the manifest's 0.0.0.0 is checked above, not bound.
    let i = args.iter().position(|a| a == "--listen").unwrap();
    args[i + 1] = "127.0.0.1:0".into();
    args
}

fn request(addr: &str, head: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{head}Host: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    (
        text.split_whitespace().nth(1).unwrap().parse().unwrap(),
        text,
    )
}

#[test]
fn the_manifests_own_config_serves_and_answers_its_probes() {
    let root = tempfile::Builder::new()
        .prefix("airlock-deploy-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let args = materialize(root.path());
    let log = root.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(&args)
        .env("AIRLOCK_CACHE", common::scratch().join("cache"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = common::serve_address(&mut child, &log);
    for path in [airlock::serve::HEALTH_PATH, airlock::serve::READY_PATH] {
        let (status, text) = request(&addr, &format!("GET {path} HTTP/1.1\r\n"));
        assert_eq!(status, 200, "{path}: {text}");
    }
    let (_, text) = request(
        &addr,
        &format!("GET {} HTTP/1.1\r\n", airlock::serve::READY_PATH),
    );
    assert!(text.contains(r#""research":1"#), "{text}");
    // Its token is required: the toolkit refuses a call without one.
    let (status, text) = request(
        &addr,
        "POST /toolkits/research/mcp HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
    );
    assert_eq!(status, 401, "{text}");
    let _ = child.kill();
    let _ = child.wait();
}
