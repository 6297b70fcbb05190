//! `arbor`: export models, generate, run programs, serve, benchmark.

mod cmd;

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    // CUDA loads each kernel module on its first use by default, and a
    // scheduler's steps keep meeting new kernel variants: on an H200 that
    // stalled single steps by up to 0.7 s, and loading every module when
    // CUDA starts made the few-shot bench 18% faster (docs/benchmarks.md).
    // Read once, when CUDA initialises, so it must be set before any thread
    // starts; a CPU-only run never initialises CUDA. A user's own setting wins.
    if std::env::var_os("CUDA_MODULE_LOADING").is_none() {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe { std::env::set_var("CUDA_MODULE_LOADING", "EAGER") };
    }
    let cli = match cmd::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // One line like every other error; the usage is one `--help` away.
            eprintln!("error: {}", one_line_usage_error(&e));
            std::process::exit(e.exit_code());
        }
    };
    if let Err(e) = cmd::run(cli) {
        // One line, no backtrace: errors here are the user's to act on.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}

/// clap's message without its usage block, folded onto one line.
fn one_line_usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let body = text.split("\nUsage:").next().unwrap_or(&text);
    let body = body.split("For more information").next().unwrap_or(body);
    let body = body.trim().strip_prefix("error:").unwrap_or(body).trim();
    let parts: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("{} (see --help)", parts.join(" "))
}
