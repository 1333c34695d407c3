//! `cairn`: the server (`cairn serve`) and the CLI for everything else.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program prints

mod cli;
mod input;
mod output;
mod realtime;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error_line(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    rt.block_on(cli::run(args))
}
