//! Subcommands.

mod bench;
mod choices;
mod demo;
mod export;
mod generate;
mod json_bench;
mod run;
mod serve;
mod tenant;
mod workloads;

use clap::{Parser, Subcommand};

/// Arbor: a WebAssembly-sandboxed host for LLM programs.
#[derive(Parser)]
#[command(name = "arbor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Export(export::Args),
    Generate(generate::Args),
    Demo(demo::Args),
    Run(run::Args),
    Serve(serve::Args),
    #[command(subcommand)]
    Tenant(tenant::TenantCmd),
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Export(a) => export::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Tenant(c) => tenant::run(c),
        Command::Bench(c) => bench::run(c),
    }
}
