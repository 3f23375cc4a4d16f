//! `airlock new`: a tool project in Rust, Python or JavaScript whose world
//! imports exactly the chosen verbs. [`Project::files`] renders every file (a
//! pure function, tested for every language and verb combination);
//! [`Project::create`] writes them into a new directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;
use crate::render::Context;

/// The wit-bindgen version airlock's guests use (guests/Cargo.lock); the
/// Rust template pins it exactly. A test keeps the two equal.
pub const WIT_BINDGEN: &str = "0.63.0";
/// The componentize-py version the Python template installs.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js version the JavaScript template pins.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The URL the `fetch` example reads, and its grant allows.
const EXAMPLE_URL: &str = "https://example.com/";

/// A verb a tool can import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `airlock:verbs/log`.
    Log,
    /// `airlock:verbs/sign`.
    Sign,
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
    /// Every verb, in the order a project lists them.
    pub const ALL: [Verb; 6] = [
        Verb::Log,
        Verb::Sign,
        Verb::Fetch,
        Verb::Complete,
        Verb::Kv,
        Verb::Sql,
    ];

    /// The verb's interface name in `airlock:verbs`.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Log => "log",
            Verb::Sign => "sign",
            Verb::Fetch => "fetch",
            Verb::Complete => "complete",
            Verb::Kv => "kv",
            Verb::Sql => "sql",
        }
    }
}

impl FromStr for Verb {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Verb::ALL
            .into_iter()
            .find(|v| v.name() == s.trim())
            .ok_or_else(|| Error::UnknownVerb(s.to_string()))
    }
}

/// The language of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust with wit-bindgen, built by cargo for wasm32-wasip2.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

impl Lang {
    /// Every language with a template.
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];
}

impl FromStr for Lang {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" | "py" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(Error::UnknownLang(other.to_string())),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its path inside the project directory.
    pub path: PathBuf,
    /// What it holds.
    pub contents: String,
    /// Whether only the user may read it (a generated key).
    pub private: bool,
}

/// What `airlock new` makes: a named tool in one language with some verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    name: String,
    lang: Lang,
    verbs: Vec<Verb>,
}

/// Names no project may have: WIT keywords (the name is the world's and the
/// package's) and names Cargo, Python or npm refuse for a package.
const RESERVED: &[&str] = &[
    // WIT
    "as",
    "async",
    "bool",
    "borrow",
    "char",
    "constructor",
    "enum",
    "export",
    "f32",
    "f64",
    "flags",
    "func",
    "future",
    "import",
    "include",
    "interface",
    "list",
    "own",
    "package",
    "record",
    "resource",
    "result",
    "s16",
    "s32",
    "s64",
    "s8",
    "static",
    "stream",
    "string",
    "tuple",
    "type",
    "u16",
    "u32",
    "u64",
    "u8",
    "use",
    "variant",
    "with",
    "world",
    "error-context",
    // Cargo, Rust and the component build tools
    "alloc",
    "core",
    "std",
    "test",
    "proc-macro",
    "self",
    "super",
    "crate",
    "fn",
    "mod",
    "impl",
    "struct",
    "trait",
    "let",
    "match",
    "loop",
    "while",
    "for",
    "if",
    "else",
    "return",
    "pub",
    "wit-bindgen",
    "wit-world",
    "node-modules",
    "favicon-ico",
];

/// The longest name accepted: MCP clients accept tool names up to 64
/// characters, and the agent sees `NAME__greet`.
const MAX_NAME: usize = 40;

/// Checks that `name` can name the tool's directory, WIT package and world,
/// Rust crate, npm package and toolkit entry: lowercase words of ASCII
/// letters and digits joined by single `-`, each word starting with a letter.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME {
        return invalid(&format!("it is longer than {MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return invalid(&format!("it contains {c:?}"));
    }
    if name.split('-').any(|word| word.is_empty()) {
        return invalid("it starts or ends with `-` or has two in a row");
    }
    if name
        .split('-')
        .any(|word| !word.starts_with(|c: char| c.is_ascii_lowercase()))
    {
        return invalid("each `-`-separated word must start with a letter");
    }
    if RESERVED.contains(&name) {
        return invalid("it is a keyword or a reserved package name");
    }
    Ok(())
}

impl Project {
    /// A project named `name` in `lang` importing `verbs` (duplicates
    /// dropped, at least one). The name is checked by [`validate_name`].
    pub fn new(name: &str, lang: Lang, verbs: &[Verb]) -> Result<Self, Error> {
        validate_name(name)?;
        let mut verbs = verbs.to_vec();
        verbs.sort();
        verbs.dedup();
        if verbs.is_empty() {
            return Err(Error::NoVerbs);
        }
        Ok(Self {
            name: name.to_string(),
            lang,
            verbs,
        })
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the built component lands, relative to the project directory.
    pub fn component_path(&self) -> String {
        match self.lang {
            Lang::Rust => format!(
                "target/wasm32-wasip2/release/{}.wasm",
                self.name.replace('-', "_")
            ),
            Lang::Python | Lang::Js => format!("{}.wasm", self.name),
        }
    }

    fn has(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }

    /// The doc comment of `greet`: what an agent reads about it.
    fn greet_doc(&self) -> String {
        let mut parts = Vec::new();
        if self.has(Verb::Sign) {
            parts.push(format!("signed with the host-held key `{}`", self.name));
        }
        if self.has(Verb::Fetch) {
            parts.push(format!("with the HTTP status of {EXAMPLE_URL}"));
        }
        if self.has(Verb::Complete) {
            parts.push("with a language model's own greeting".to_string());
        }
        if self.has(Verb::Kv) {
            parts.push("with how many times `name` was greeted before".to_string());
        }
        if self.has(Verb::Sql) {
            parts
                .push("with how often `name` appears in the granted table `greetings`".to_string());
        }
        let mut doc = String::from("Greet `name`: returns the greeting");
        if !parts.is_empty() {
            doc.push(' ');
            doc.push_str(&parts.join(", "));
        }
        doc.push('.');
        if self.has(Verb::Log) {
            doc.push_str(" Logs one line per call.");
        }
        doc
    }

    fn context(&self) -> Context {
        let mut c = Context::default();
        let verbs: Vec<String> = self
            .verbs
            .iter()
            .map(|v| format!("`{}`", v.name()))
            .collect();
        let (lang_name, source) = match self.lang {
            Lang::Rust => ("Rust", "src/lib.rs"),
            Lang::Python => ("Python", "app.py"),
            Lang::Js => ("JavaScript", "app.js"),
        };
        c.value("name", &self.name)
            .value("name_mcp", self.name.replace('-', "_"))
            .value("wasm", self.component_path())
            .value("url", EXAMPLE_URL)
            .value("greet_doc", self.greet_doc())
            .value("verbs_list", verbs.join(", "))
            .value("lang_name", lang_name)
            .value("source", source)
            .value("wit_bindgen", WIT_BINDGEN)
            .value("componentize_py", COMPONENTIZE_PY)
            .value("componentize_js", COMPONENTIZE_JS);
        for verb in Verb::ALL {
            c.flag(verb.name(), self.has(verb));
        }
        c.flag("rust", self.lang == Lang::Rust)
            .flag("python", self.lang == Lang::Python)
            .flag("js", self.lang == Lang::Js)
            .flag("big", self.lang != Lang::Rust)
            .flag(
                "host_config",
                self.has(Verb::Sign)
                    || self.has(Verb::Complete)
                    || self.has(Verb::Kv)
                    || self.has(Verb::Sql),
            );
        c
    }

    /// Every file of the project but the generated key, rendered.
    pub fn files(&self) -> Vec<File> {
        let c = self.context();
        let file = |path: &str, template: &str| File {
            path: PathBuf::from(path),
            contents: c.render(path, template),
            private: false,
        };
        let mut files = vec![
            file("README.md", include_str!("../templates/README.md")),
            file("wit/world.wit", include_str!("../templates/world.wit")),
            file("toolkit.toml", include_str!("../templates/toolkit.toml")),
            file(".gitignore", include_str!("../templates/gitignore")),
        ];
        if self.has(Verb::Sign)
            || self.has(Verb::Complete)
            || self.has(Verb::Kv)
            || self.has(Verb::Sql)
        {
            files.push(file(
                "airlock.toml",
                include_str!("../templates/airlock.toml"),
            ));
        }
        match self.lang {
            Lang::Rust => {
                files.push(file(
                    "Cargo.toml",
                    include_str!("../templates/rust/Cargo.toml"),
                ));
                files.push(file("src/lib.rs", include_str!("../templates/rust/lib.rs")));
            }
            Lang::Python => files.push(file("app.py", include_str!("../templates/python/app.py"))),
            Lang::Js => {
                files.push(file(
                    "package.json",
                    include_str!("../templates/js/package.json"),
                ));
                files.push(file("app.js", include_str!("../templates/js/app.js")));
            }
        }
        for (name, text) in crate::wit::VERBS_WIT {
            files.push(File {
                path: Path::new(crate::wit::DEPS_DIR).join(name),
                contents: text.to_string(),
                private: false,
            });
        }
        files
    }

    /// Creates the directory `dir` (which must not exist) holding the
    /// project, and for `sign` a random 32-byte HMAC key (hex) readable only
    /// by the user. Returns the files written, relative to `dir`.
    pub fn create(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let mut files = self.files();
        if self.has(Verb::Sign) {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
            files.push(File {
                path: PathBuf::from(format!("{}.key", self.name)),
                contents: format!("{}\n", hex::encode(key)),
                private: true,
            });
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // create_dir, not create_dir_all: refuses an existing directory
        // atomically, even one made since a check.
        std::fs::create_dir(dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: dir.to_path_buf(),
                }
            } else {
                Error::Io {
                    path: dir.to_path_buf(),
                    source,
                }
            }
        })?;
        for f in &files {
            let path = dir.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            write_file(&path, &f.contents, f.private).map_err(io(&path))?;
        }
        Ok(files.into_iter().map(|f| f.path).collect())
    }
}

/// Writes a new file; a private one is created with mode 600 on Unix.
fn write_file(path: &Path, contents: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests;
