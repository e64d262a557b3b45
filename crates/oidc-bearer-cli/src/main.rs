// Run: `cargo run -p oidc-bearer-cli -- inspect < token` (or `verify`, `discover`; `--help` for each).
//! `oidc-bearer`: find out why a token is refused without pasting a live credential into a website.
//!
//! - `inspect` decodes a token without trusting it and says what kind it is; it contacts nothing.
//! - `verify` runs the library's own [`Verifier`](oidc_bearer::Verifier) and reports every rule.
//! - `discover` fetches an issuer's discovery document and keys and says what a verifier would do.
//!
//! Tokens are read from a file or standard input (`-`, the default), never from the command line,
//! where other users of the machine can read them in the process list.

mod discover;
mod http;
mod input;
mod inspect;
mod jwt;
mod output;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Inspect, verify and discover identity tokens locally.
#[derive(Parser)]
#[command(name = "oidc-bearer", version, about, long_about = None)]
struct Cli {
    /// Print one JSON document instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a token's header and claims WITHOUT checking them, and say what kind of token it is.
    /// Contacts nothing.
    Inspect {
        /// The file holding the token; `-` (the default) reads standard input.
        #[arg(default_value = "-")]
        token: PathBuf,
    },
    /// Verify a token with the library's own verifier (same code, same defaults) and report each
    /// rule. Exit status 0 when the token is accepted, 1 when it is refused, 2 on a usage error.
    Verify(verify::VerifyArgs),
    /// Fetch an issuer's discovery document and key set, and show what a verifier would make of them.
    /// Exit status 0 when a verifier could load the keys, 1 otherwise.
    Discover(discover::DiscoverArgs),
}

/// Settings of the HTTP fetches shared by `verify` and `discover`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct HttpArgs {
    /// Trust these extra root certificates (PEM file), e.g. a cluster's `ca.crt`.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// DANGEROUS: allow plain-http issuers and key URLs off loopback.
    #[arg(long)]
    dangerous_allow_insecure_http: bool,
}

/// What a subcommand ends with: accepted or refused, or a usage error with its message.
pub(crate) enum Outcome {
    Ok,
    Refused,
}

/// A usage or input error: printed to standard error, exit status 2.
pub(crate) struct UsageError(pub(crate) String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { token } => inspect::run(&token, cli.json),
        Command::Verify(args) => runtime().and_then(|rt| rt.block_on(verify::run(args, cli.json))),
        Command::Discover(args) => {
            runtime().and_then(|rt| rt.block_on(discover::run(args, cli.json)))
        }
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(UsageError(message)) => {
            // A message may quote a file's or a server's text: escaped like standard output.
            eprintln!("oidc-bearer: {}", oidc_bearer::Escaped(&message));
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
