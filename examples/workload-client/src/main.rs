// Run: `cargo run -p resource-server` in one terminal, then `cargo run -p workload-client` (or
// `IDENTITY=google cargo run -p workload-client`) in another.
//! The tutorial's client: every few seconds it calls a resource server's `/` and `/private` with its
//! workload identity, and prints the answers and which identity it used.
//!
//! `IDENTITY` picks the credential, as in the tutorial:
//! - `cluster` (default): the projected Kubernetes service-account token in `TOKEN_FILE`, which the
//!   kubelet rotates; read through [`FileTokenSource`], which picks each new token up without a restart.
//! - `google`: a Google-signed ID token for `AUDIENCE` from the GKE metadata server, through
//!   [`MetadataTokenSource`], which fetches a new one shortly before the last expires.
//!
//! Offline, the resource-server example (run without `ID_ISSUER`) plays the kubelet (it rewrites the
//! token file at the default path every 30 s) and the metadata server (on 127.0.0.1:8081), and trusts
//! both identities. The token goes out through [`AddBearerLayer`] on hyper-util's client.
//!
//! Settings, all optional:
//!
//! | variable            | default                                                              |
//! |---------------------|----------------------------------------------------------------------|
//! | `IDENTITY`          | `cluster`; or `google`                                               |
//! | `SERVER_URL`        | `http://127.0.0.1:8080`                                              |
//! | `TOKEN_FILE`        | `$TMPDIR/oidc-bearer-demo/token` (`cluster`)                         |
//! | `AUDIENCE`          | `resource-server` (`google`: the `aud` the server checks)            |
//! | `GCE_METADATA_HOST` | `google`: as Google's libraries, `host:port` of the metadata server; |
//! |                     | unset: `127.0.0.1:8081` (the demo's) while `SERVER_URL` is unset,    |
//! |                     | else `metadata.google.internal`                                      |
//! | `INTERVAL_SECS`     | `5`                                                                  |
//! | `ITERATIONS`        | none: run until stopped; `N`: N rounds                               |
//! | `RUST_LOG`          | `info`                                                               |
//! | `LOG_FORMAT`        | `text` (coloured only on a terminal); `json`: one object per line    |

use std::{error::Error, path::PathBuf, process::ExitCode, time::Duration};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use oidc_bearer_client::{
    AddBearerLayer, BoxError, FileTokenSource, METADATA_HOST_ENV, MetadataTokenSource,
    SharedTokenSource, error_chain,
};
use tower::{Service, ServiceBuilder, ServiceExt as _};

/// The metadata server of the offline demo (`cargo run -p resource-server`).
const DEMO_METADATA_HOST: &str = "127.0.0.1:8081";

/// The most of an answer that is read and printed.
const BODY_LIMIT: usize = 64 * 1024;

/// The credential the client sends.
enum Identity {
    /// The projected service-account token in this file.
    Cluster { token_file: PathBuf },
    /// Google ID tokens for this audience from the metadata server at this `host:port`, or Google's
    /// default address.
    Google {
        audience: String,
        metadata_host: Option<String>,
    },
}

impl Identity {
    const NAMES: &'static str = "cluster, google";

    fn name(&self) -> &'static str {
        match self {
            Self::Cluster { .. } => "cluster",
            Self::Google { .. } => "google",
        }
    }

    /// The token source for this identity, and a line that says where its tokens come from.
    fn source(&self) -> Result<(SharedTokenSource, String), Box<dyn Error>> {
        match self {
            Self::Cluster { token_file } => Ok((
                // No up-front read: the resource server may create the file after we start, and until
                // then each round reports the missing file and tries again.
                SharedTokenSource::new(FileTokenSource::new(token_file)),
                format!("the token in {}", token_file.display()),
            )),
            Self::Google {
                audience,
                metadata_host,
            } => {
                let source = match metadata_host {
                    Some(host) => MetadataTokenSource::new(audience.as_str())?
                        .with_base_url(&format!("http://{host}"))?,
                    None => MetadataTokenSource::from_env(audience.as_str())?,
                };
                let origin = format!("ID tokens from {}", source.url());
                Ok((SharedTokenSource::new(source), origin))
            }
        }
    }
}

struct Config {
    server_url: String,
    identity: Identity,
    interval: Duration,
    iterations: Option<u64>,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let demo = var("SERVER_URL").is_none();
        let server_url = var("SERVER_URL").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        server_url
            .parse::<Uri>()
            .map_err(|e| format!("SERVER_URL {server_url:?}: {e}"))?;
        let identity = match var("IDENTITY").as_deref() {
            None | Some("cluster") => Identity::Cluster {
                token_file: var("TOKEN_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| std::env::temp_dir().join("oidc-bearer-demo/token")),
            },
            Some("google") => Identity::Google {
                audience: var("AUDIENCE").unwrap_or_else(|| "resource-server".to_owned()),
                // GCE_METADATA_HOST wins (MetadataTokenSource::from_env reads it); the local demo's
                // stand-in otherwise, as long as the server is the local demo's too.
                metadata_host: match var(METADATA_HOST_ENV) {
                    Some(_) => None,
                    None if demo => Some(DEMO_METADATA_HOST.to_owned()),
                    None => None,
                },
            },
            Some(other) => {
                return Err(format!(
                    "IDENTITY={other:?} is not an identity this client knows; use one of: {}",
                    Identity::NAMES
                ));
            }
        };
        let interval = match var("INTERVAL_SECS") {
            Some(secs) => secs
                .parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("INTERVAL_SECS {secs:?} is not a positive number"))?,
            None => Duration::from_secs(5),
        };
        let iterations = var("ITERATIONS")
            .map(|n| {
                n.parse::<u64>()
                    .map_err(|e| format!("ITERATIONS {n:?}: {e}"))
            })
            .transpose()?;
        Ok(Self {
            server_url: server_url.trim_end_matches('/').to_owned(),
            identity,
            interval,
            iterations,
        })
    }
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `info`): plain text, coloured only when
/// stderr is a terminal (`kubectl logs` would show the escape codes), or one JSON object per line
/// with `LOG_FORMAT=json`, for log pipelines. (The same function in each example.)
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    if format == "json" {
        return logs.json().init();
    }
    logs.with_ansi(std::io::stderr().is_terminal()).init();
    if !matches!(format.as_str(), "" | "text") {
        tracing::warn!("LOG_FORMAT={format:?} is neither `text` nor `json`: logging text");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Shows the sources' warnings: a rotation that left the file empty, a metadata server that is down.
    init_logging();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let config = Config::from_env()?;
    let (source, origin) = config.identity.source()?;
    let identity = config.identity.name();
    println!(
        "calling {} every {:?} as {identity}: {origin}",
        config.server_url, config.interval,
    );

    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source))
        .service(http);

    let mut ticker = tokio::time::interval(config.interval);
    let mut round = 0;
    while config.iterations.is_none_or(|n| round < n) {
        ticker.tick().await;
        round += 1;
        for path in ["/", "/private"] {
            let uri: Uri = format!("{}{path}", config.server_url).parse()?;
            match get(&mut client, uri).await {
                Ok((status, body)) => {
                    println!("[{round}] GET {path} as {identity} -> {status} {body}");
                }
                Err(error) => {
                    println!(
                        "[{round}] GET {path} as {identity} failed: {}",
                        error_chain(&*error)
                    );
                }
            }
        }
    }
    Ok(())
}

/// One GET through the layered client: the layer adds the token, hyper-util sends the request.
async fn get<S>(client: &mut S, uri: Uri) -> Result<(http::StatusCode, String), BoxError>
where
    S: Service<
            Request<Empty<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        >,
{
    let request = Request::get(uri).body(Empty::new())?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), BODY_LIMIT)
        .collect()
        .await?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).trim().to_owned()))
}
