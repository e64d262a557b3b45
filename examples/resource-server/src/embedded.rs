//! The offline mode: two issuers on 127.0.0.1 and what the workload needs to obtain their tokens.
//!
//! - A Kubernetes test issuer. Its token for the workload's service account is written to a file and
//!   rewritten every `rotate_every`, as the kubelet does for a projected service-account token volume
//!   (`cluster` identity of `examples/workload-client`).
//! - [`GoogleStandIn`]: an issuer standing in for `https://accounts.google.com`, and the GKE metadata
//!   server that mints its ID tokens for any audience (`google` identity).
//!
//! Both issuers are trusted through one [`IssuerRegistry`], which picks the verifier by the token's
//! `iss`: a token of one issuer is never checked against the other's keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oidc_bearer::Verifier;
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::{TestIssuer, now};

use crate::google::{GoogleStandIn, ServiceAccount};

/// What the offline mode is set up with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience tokens are minted for and checked against.
    pub audience: String,
    /// Where the Kubernetes token is written.
    pub token_file: PathBuf,
    /// How often the token file is rewritten with a new token.
    pub rotate_every: Duration,
    /// How long every minted token lives (Kubernetes' default and Google's ID tokens: an hour).
    pub token_lifetime: Duration,
}

/// The issuers, their verifiers, and the registry that trusts both.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The cluster's issuer.
    pub kubernetes: TestIssuer,
    /// Google's issuer and the metadata server.
    pub google: GoogleStandIn,
    /// Trusts both issuers (warm it up at start).
    pub registry: IssuerRegistry,
    settings: Settings,
}

impl Embedded {
    /// Starts both issuers on 127.0.0.1 and builds their verifiers; nothing is written yet.
    pub async fn start(settings: Settings) -> Result<Self, oidc_bearer::ConfigError> {
        let kubernetes = TestIssuer::start().await;
        let google = GoogleStandIn::start(ServiceAccount::default(), settings.token_lifetime).await;
        let verifiers = vec![
            Verifier::new(kubernetes.issuer(), settings.audience.clone())?,
            google.verifier(&settings.audience)?,
        ];
        let registry = verifiers
            .into_iter()
            .fold(IssuerRegistry::builder(), |builder, verifier| {
                builder.with_verifier(verifier)
            })
            .build()?;
        Ok(Self {
            kubernetes,
            google,
            registry,
            settings,
        })
    }

    /// The settings it started with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Mints the workload's Kubernetes token and writes it to the token file atomically (a temporary
    /// file renamed over the old one, so a reader sees the old token or the new one).
    pub fn write_token_file(&self) -> std::io::Result<String> {
        let lifetime = i64::try_from(self.settings.token_lifetime.as_secs()).unwrap_or(3600);
        let token = self
            .kubernetes
            .token()
            .kubernetes("default", "workload-client")
            .aud(&self.settings.audience)
            .exp(now() + lifetime)
            .sign();
        write_atomically(&self.settings.token_file, &token)?;
        Ok(token)
    }

    /// Rewrites the token file every `rotate_every`, as the kubelet would, until the runtime stops.
    pub fn spawn_rotation(&self) {
        let embedded = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(embedded.settings.rotate_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(error) = embedded.write_token_file() {
                    tracing::warn!(%error, "could not rewrite the token file");
                }
            }
        });
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
