// Run: `cargo run -p resource-server` in one terminal, then `cargo run -p workload-client` in another.
//! The tutorial's client: every few seconds it calls a resource server's `/` and `/private` with the
//! workload token from a file, and prints the answers.
//!
//! In Kubernetes the token file is a projected service-account token that the kubelet rotates; here
//! the resource-server example (run without `ID_ISSUER`) plays the kubelet and rewrites the file at the
//! default path every 30 s. The client picks each new token up without restarting, through
//! [`FileTokenSource`], and attaches it with [`AddBearerLayer`] on hyper-util's client.
//!
//! Settings, all optional:
//!
//! | variable        | default                                  |
//! |-----------------|------------------------------------------|
//! | `SERVER_URL`    | `http://127.0.0.1:8080`                  |
//! | `TOKEN_FILE`    | `$TMPDIR/oidc-bearer-demo/token`         |
//! | `INTERVAL_SECS` | `5`                                      |
//! | `ITERATIONS`    | none: run until stopped; `N`: N rounds   |

use std::{error::Error, path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use oidc_bearer_client::{AddBearerLayer, FileTokenSource, layer::BoxError};
use tower::{Service, ServiceBuilder, ServiceExt as _};

struct Config {
    server_url: String,
    token_file: PathBuf,
    interval: Duration,
    iterations: Option<u64>,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let server_url = var("SERVER_URL").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        server_url
            .parse::<Uri>()
            .map_err(|e| format!("SERVER_URL {server_url:?}: {e}"))?;
        let token_file = var("TOKEN_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("oidc-bearer-demo/token"));
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
            token_file,
            interval,
            iterations,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Shows the source's warnings, e.g. a rotation that left the file empty.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let config = Config::from_env()?;
    println!(
        "calling {} every {:?} with the token in {}",
        config.server_url,
        config.interval,
        config.token_file.display()
    );

    // No up-front read: the resource server may create the file after we start, and until then each
    // round reports the missing file and tries again.
    let source = FileTokenSource::new(&config.token_file);
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
                Ok((status, body)) => println!("[{round}] GET {path} -> {status} {body}"),
                Err(error) => println!("[{round}] GET {path} failed: {}", chain(&*error)),
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
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).trim().to_owned()))
}

/// "error: cause: cause", since hyper-util's own message ("client error (Connect)") hides the cause.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
