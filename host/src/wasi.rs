//! Null WASI: the WASI interfaces a std-built guest imports, linked one at a
//! time and backed by nothing. Empty args, environment and stdin; stdout and
//! stderr captured per job with a cap; no preopened directory (the file system
//! is linked empty); clocks, random and exit. Sockets and HTTP are never linked: the
//! refusing stubs of [`crate::no_network`] answer them.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

/// The WASI interfaces airlock links (package/interface, no version): a guest
/// importing only these and its granted verbs passes the world check.
pub const NULL_WASI: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// What a guest gets when it uses one of [`NULL_WASI`], in plain words.
pub fn null_wasi_meaning(interface: &str) -> &'static str {
    match interface {
        "wasi:cli/environment" => "no arguments, no environment variables",
        "wasi:cli/stdin" => "stdin is empty",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "captured by the host, capped",
        "wasi:cli/exit" => "exit ends the job",
        i if i.starts_with("wasi:cli/terminal") => "no terminal",
        i if i.starts_with("wasi:clocks") => "the time of day and a monotonic clock",
        i if i.starts_with("wasi:random") => "random bytes",
        "wasi:filesystem/preopens" => "no directories are open",
        "wasi:filesystem/types" => "no file can be reached (nothing is open)",
        i if i.starts_with("wasi:io") => "streams for stdio only",
        i if crate::no_network::STUBBED.contains(&i) => crate::no_network::MEANING,
        _ => "linked empty",
    }
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links every interface of [`NULL_WASI`], one by one.
pub fn add_to_linker<T: WasiView + 'static>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
    use wasmtime_wasi_io::bindings::wasi::io;

    io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    Ok(())
}

/// Captured stdout and stderr of one job (clones share the same buffers).
#[derive(Clone)]
pub struct Captured {
    /// The guest's stdout, up to the cap.
    pub stdout: MemoryOutputPipe,
    /// The guest's stderr, up to the cap.
    pub stderr: MemoryOutputPipe,
    cap: usize,
}

impl Captured {
    /// Whether either stream went past its cap. The pipes hold one byte more
    /// than the cap, so writing exactly the cap is allowed.
    pub fn overflowed(&self) -> bool {
        self.stdout.contents().len() > self.cap || self.stderr.contents().len() > self.cap
    }

    /// Stdout and stderr as text (invalid UTF-8 replaced).
    pub fn text(&self) -> (String, String) {
        let text = |pipe: &MemoryOutputPipe| String::from_utf8_lossy(&pipe.contents()).into_owned();
        (text(&self.stdout), text(&self.stderr))
    }
}

impl Captured {
    /// Empty pipes that accept `output_cap` bytes each. They hold one byte
    /// more, so writing exactly the cap is allowed and more is detected.
    pub fn new(output_cap: usize) -> Self {
        Self {
            stdout: MemoryOutputPipe::new(output_cap.saturating_add(1)),
            stderr: MemoryOutputPipe::new(output_cap.saturating_add(1)),
            cap: output_cap,
        }
    }

    /// A WASI context with nothing in it but these pipes. Built lazily, on a
    /// job's first WASI call: a tool that imports no WASI never pays for it.
    pub fn null_ctx(&self) -> WasiCtx {
        let mut b = WasiCtxBuilder::new();
        // Sockets are never linked; these pins keep it so even if that changed.
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(false)
            .stdout(self.stdout.clone())
            .stderr(self.stderr.clone());
        b.build()
    }
}
