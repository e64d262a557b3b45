//! Kubernetes service-account tokens, bound and legacy, and the in-cluster issuer, through real
//! issuers on 127.0.0.1 with keys generated per test.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::jwks_of;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use oidc_bearer::claims::kubernetes::KubernetesClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::StaticKeySet;
use oidc_bearer::{FetchError, KeysError, Verifier, VerifyError};
use oidc_bearer_kubernetes::ReviewError;
use oidc_bearer_kubernetes::{InCluster, dangerous_legacy_service_account_verifier};
use oidc_bearer_testing::{TestIssuer, TokenBuilder, now};
use serde_json::{Value, json};

const AUD: &str = "my-service";
const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The `iss` of legacy, secret-based service-account tokens.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// A token shaped like the ones Kubernetes stored in `Secret`s before 1.24: flat claims, no `exp`,
/// no `aud`, no `iat`.
fn legacy_token(issuer: &TestIssuer) -> TokenBuilder {
    issuer
        .token()
        .iss(LEGACY_ISSUER)
        .sub("system:serviceaccount:prod:billing")
        .no_exp()
        .no_iat()
        .claim("kubernetes.io/serviceaccount/namespace", json!("prod"))
        .claim(
            "kubernetes.io/serviceaccount/secret.name",
            json!("billing-token-x7k2p"),
        )
        .claim(
            "kubernetes.io/serviceaccount/service-account.name",
            json!("billing"),
        )
        .claim(
            "kubernetes.io/serviceaccount/service-account.uid",
            json!("3f1e6c1a-uid"),
        )
}

#[tokio::test]
async fn legacy_token_is_accepted_only_under_the_legacy_policy() {
    let issuer = TestIssuer::start().await;
    let legacy = dangerous_legacy_service_account_verifier(jwks_of(&issuer))
        .build()
        .unwrap();
    let claims: KubernetesClaims = legacy.verify(&legacy_token(&issuer).sign()).await.unwrap();
    assert!(claims.legacy.namespace.is_some());
    assert_eq!(claims.registered.exp, None);
    assert_eq!(claims.registered.aud.iter().count(), 0);
    let sa = claims.service_account().unwrap();
    assert_eq!(
        (sa.namespace, sa.name, sa.uid),
        ("prod", "billing", "3f1e6c1a-uid")
    );
    assert_eq!(
        claims.legacy.secret_name.as_deref(),
        Some("billing-token-x7k2p")
    );

    // The default policy, with the same keys and issuer, refuses it: no audience, no expiry.
    let default = Verifier::builder(LEGACY_ISSUER, AUD)
        .with_key_set(StaticKeySet::new(jwks_of(&issuer)))
        .build()
        .unwrap();
    let rows: Vec<(&str, TokenBuilder, &str, &str)> = vec![
        // (name, token, under the legacy policy, under the default policy)
        (
            "legacy token",
            legacy_token(&issuer),
            "ok",
            "audience_mismatch",
        ),
        (
            "legacy token with an audience",
            legacy_token(&issuer).aud(AUD),
            "ok",
            "missing_claim",
        ),
        (
            "bound-shaped token under the legacy issuer",
            issuer
                .token()
                .iss(LEGACY_ISSUER)
                .kubernetes("prod", "billing")
                .aud(AUD),
            "missing_claim",
            "ok",
        ),
        (
            "legacy token with a null namespace",
            legacy_token(&issuer).claim("kubernetes.io/serviceaccount/namespace", Value::Null),
            "missing_claim",
            "audience_mismatch",
        ),
        (
            "legacy claims under another issuer",
            legacy_token(&issuer).iss("https://evil.example"),
            "issuer_mismatch",
            "issuer_mismatch",
        ),
        (
            "legacy token, expired",
            legacy_token(&issuer).exp(now() - 3600),
            "expired",
            "audience_mismatch",
        ),
    ];
    for (name, builder, under_legacy, under_default) in rows {
        let token = builder.sign();
        assert_eq!(
            code(legacy.verify::<KubernetesClaims>(&token).await),
            under_legacy,
            "{name}"
        );
        assert_eq!(
            code(default.verify::<KubernetesClaims>(&token).await),
            under_default,
            "{name}"
        );
    }

    // Signed by a key the cluster does not use.
    let other = TestIssuer::start().await;
    let forged = legacy_token(&other).sign();
    assert_eq!(
        code(legacy.verify::<KubernetesClaims>(&forged).await),
        "invalid_signature"
    );
    // Static keys: nothing was ever fetched.
    assert_eq!(issuer.discovery_fetches() + issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn bound_token_claims_are_typed() {
    let issuer = TestIssuer::builder().issuer(CLUSTER_ISSUER).start().await;
    let verifier = Verifier::builder(CLUSTER_ISSUER, AUD)
        .with_discovery_url(issuer.discovery_url())
        .build()
        .unwrap();
    let warnafter = now() + 3607;
    let token = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .claim(
            "kubernetes.io",
            json!({
                "namespace": "prod",
                "serviceaccount": {"name": "billing", "uid": "sa-uid"},
                "pod": {"name": "billing-7d4b9c8f6-x2k9q", "uid": "pod-uid"},
                "secret": {"name": "billing-secret", "uid": "secret-uid"},
                "node": {"name": "node-1", "uid": "node-uid"},
                "warnafter": warnafter,
            }),
        )
        .claim("jti", json!("token-id"))
        .sign();
    let claims: KubernetesClaims = verifier.verify(&token).await.unwrap();
    assert!(claims.legacy.namespace.is_none());
    let k = claims.kubernetes.as_ref().unwrap();
    assert_eq!(k.namespace, "prod");
    assert_eq!(
        (
            k.serviceaccount.name.as_str(),
            k.serviceaccount.uid.as_str()
        ),
        ("billing", "sa-uid")
    );
    let pod = k.pod.as_ref().unwrap();
    assert_eq!(
        (pod.name.as_str(), pod.uid.as_str()),
        ("billing-7d4b9c8f6-x2k9q", "pod-uid")
    );
    let secret = k.secret.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.uid.as_str()),
        ("billing-secret", "secret-uid")
    );
    let node = k.node.as_ref().unwrap();
    assert_eq!(
        (node.name.as_str(), node.uid.as_str()),
        ("node-1", "node-uid")
    );
    assert_eq!(k.warnafter.map(|d| d.as_secs()), Some(warnafter));
    assert_eq!(claims.registered.jti.as_deref(), Some("token-id"));
    assert!(claims.registered.aud.contains(AUD));

    let sa = claims.service_account().unwrap();
    assert_eq!(
        (sa.namespace, sa.name, sa.uid),
        ("prod", "billing", "sa-uid")
    );
    assert_eq!(
        claims.registered.sub.as_deref(),
        Some("system:serviceaccount:prod:billing")
    );

    // A `sub` naming another account: the signature holds, but the token disagrees with itself, so it
    // names no service account.
    let mismatch = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud(AUD)
        .sub("system:serviceaccount:kube-system:admin")
        .sign();
    let claims: KubernetesClaims = verifier.verify(&mismatch).await.unwrap();
    assert_eq!(claims.service_account(), None);
    assert_eq!(claims.kubernetes.unwrap().serviceaccount.name, "billing");
}

/// The bearer tokens a fake API server received, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A stand-in for the API server: serves the issuer's discovery document and JWKS at the API server's
/// paths, and only to requests with a bearer token (which it records).
async fn api_server(issuer: TestIssuer) -> (String, Seen) {
    fn authorize(seen: &Seen, headers: &HeaderMap) -> Result<(), StatusCode> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        seen.lock().unwrap().push(token.to_owned());
        Ok(())
    }
    async fn discovery(
        State((issuer, seen)): State<(TestIssuer, Seen)>,
        headers: HeaderMap,
    ) -> Result<Json<Value>, StatusCode> {
        authorize(&seen, &headers)?;
        Ok(Json(issuer.discovery_json()))
    }
    async fn jwks(
        State((issuer, seen)): State<(TestIssuer, Seen)>,
        headers: HeaderMap,
    ) -> Result<Json<Value>, StatusCode> {
        authorize(&seen, &headers)?;
        Ok(Json(issuer.jwks_json()))
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .with_state((issuer, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Writes `contents` the way the kubelet updates a projected token: a new file renamed over the old.
fn replace(path: &Path, contents: &str) {
    let next = path.with_extension("next");
    fs::write(&next, contents).unwrap();
    fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn in_cluster_fetches_with_the_pod_token_and_follows_its_rotation() {
    let issuer = TestIssuer::builder().issuer(CLUSTER_ISSUER).start().await;
    // Real clusters on GKE or EKS advertise a public JWKS URL; the pod's token must not go there.
    issuer.set_jwks_uri("https://public-jwks.invalid/keys");
    let (api, seen) = api_server(issuer.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (token_path, ca_path) = (dir.path().join("token"), dir.path().join("ca.crt"));
    fs::write(&token_path, "pod-token-1\n").unwrap();
    fs::write(&ca_path, test_ca("the cluster CA").0).unwrap();
    let clock = ManualClock::new();
    let verifier = InCluster::new()
        .with_api_server(&api)
        .with_token_path(&token_path)
        .with_ca_path(&ca_path)
        .verifier_builder(CLUSTER_ISSUER, AUD)
        .unwrap()
        .with_clock(clock.clone())
        .build()
        .unwrap();

    let token = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
    let claims: KubernetesClaims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.service_account().unwrap().name, "billing");
    // Discovery, then the keys from the API server itself.
    assert_eq!(*seen.lock().unwrap(), ["pod-token-1", "pod-token-1"]);

    // The kubelet rotates the pod's token; the issuer rotates its signing key.
    replace(&token_path, "pod-token-2");
    issuer.rotate();
    clock.advance(Duration::from_secs(31)); // past the refresh cooldown
    let token = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
    let _: KubernetesClaims = verifier.verify(&token).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["pod-token-1", "pod-token-1", "pod-token-2"]
    );
    // Our stand-in served everything; the issuer's own endpoints were never asked.
    assert_eq!(issuer.discovery_fetches() + issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn in_cluster_with_the_wrong_issuer_names_the_right_one() {
    let issuer = TestIssuer::builder().issuer(CLUSTER_ISSUER).start().await;
    let (api, seen) = api_server(issuer.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    fs::write(&token_path, "pod-token").unwrap();
    let verifier = InCluster::new()
        .with_api_server(&api)
        .with_token_path(&token_path)
        .without_ca()
        .verifier_builder("https://kubernetes.default.svc", AUD)
        .unwrap()
        .build()
        .unwrap();
    let token = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
    match verifier.verify::<KubernetesClaims>(&token).await {
        Err(VerifyError::KeysUnavailable {
            source: KeysError::IssuerMismatch { expected, found },
        }) => {
            assert_eq!(expected, "https://kubernetes.default.svc");
            assert_eq!(found, CLUSTER_ISSUER);
        }
        other => panic!("expected a discovery issuer mismatch, got {other:?}"),
    }
    assert_eq!(*seen.lock().unwrap(), ["pod-token"]);
}

#[tokio::test]
async fn in_cluster_refuses_a_plain_http_api_server_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    fs::write(&token_path, "pod-token").unwrap();
    let err = InCluster::new()
        .with_api_server("http://10.0.0.1")
        .with_token_path(&token_path)
        .without_ca()
        .verifier_builder(CLUSTER_ISSUER, AUD)
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "insecure_url");
}

/// `with_fetch_bearer_token` outside the in-cluster preset: the discovery document (from the API
/// server, which gets the token) advertises its JWKS on another origin, which must not get it.
#[tokio::test]
async fn the_fetch_token_never_goes_to_an_advertised_jwks_on_another_origin() {
    let issuer = TestIssuer::builder().issuer(CLUSTER_ISSUER).start().await;
    // The JWKS as another host publishes it: the issuer's own endpoint, which records headers.
    let (elsewhere, elsewhere_seen) = api_server(issuer.clone()).await;
    let jwks_seen = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let recorder = {
        let (issuer, jwks_seen) = (issuer.clone(), jwks_seen.clone());
        axum::Router::new().route(
            "/keys",
            get(move |headers: HeaderMap| {
                let (issuer, jwks_seen) = (issuer.clone(), jwks_seen.clone());
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    jwks_seen.lock().unwrap().push(auth);
                    Json(issuer.jwks_json())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys_origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, recorder).await.unwrap() });
    issuer.set_jwks_uri(&format!("{keys_origin}/keys"));

    let verifier = Verifier::builder(CLUSTER_ISSUER, AUD)
        .with_discovery_url(format!("{elsewhere}/.well-known/openid-configuration"))
        .with_fetch_bearer_token(|| Some("pod-token".to_owned()))
        .build()
        .unwrap();
    let token = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
    let _: KubernetesClaims = verifier.verify(&token).await.unwrap();
    // Discovery (the configured origin) got the token; the advertised JWKS host did not.
    assert_eq!(*elsewhere_seen.lock().unwrap(), ["pod-token"]);
    assert_eq!(*jwks_seen.lock().unwrap(), [None]);
}

// --- Trust for the connections that carry the pod's token -------------------------------------

/// Where the parent test tells the child process what to connect to.
const TLS_CHILD_ENV: &str = "OIDC_BEARER_TEST_TLS_CHILD";
/// The child test's full name in this test binary (module path included, for `--exact`).
const TLS_CHILD: &str = "kubernetes::in_cluster_tls_child";

/// A CA generated for the test: its certificate (PEM) and what signs with its key.
fn test_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(params, key))
}

/// An HTTPS server on 127.0.0.1 whose certificate `ca` issued: it answers every request 404 after
/// a completed handshake. Returns its base URL.
fn https_404_server(ca: &rcgen::Issuer<'static, rcgen::KeyPair>) -> String {
    https_404_server_named(ca, "127.0.0.1")
}

/// [`https_404_server`] with a certificate for `name`, which its URL uses (`localhost` or
/// `127.0.0.1`).
fn https_404_server_named(ca: &rcgen::Issuer<'static, rcgen::KeyPair>, name: &str) -> String {
    use std::io::Write as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{name}:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                if !crate::support::read_http_request(&mut tls) {
                    return; // the handshake failed, or the client left
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    url
}

/// The connections that carry the pod's own token to the API server (discovery and keys, and
/// TokenReview) trust exactly the cluster's CA, as client-go's `rest.InClusterConfig` does, not
/// the system's roots besides it.
///
/// What it proves: the API server stand-in's certificate chains to a CA that this process's
/// system roots contain — the child process runs with `SSL_CERT_FILE` naming a bundle of just that
/// CA, which is where reqwest's platform verifier reads the system roots on Linux (through
/// rustls-native-certs); the environment is the process's, hence a child. The child first checks
/// that the system roots really trust the stand-in (a client with no CA configured reaches it), then
/// that an `InCluster` configured with another CA (the cluster's) is refused at the handshake on
/// both paths, and that one configured with the stand-in's CA reaches it.
#[cfg(target_os = "linux")]
#[test]
fn in_cluster_connections_trust_only_the_cluster_ca_not_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (system_pem, system_ca) = test_ca("a CA among the system's roots");
    let (cluster_pem, _) = test_ca("the cluster CA");
    let url = https_404_server(&system_ca);
    fs::write(dir.path().join("system.pem"), system_pem).unwrap();
    fs::write(dir.path().join("cluster.pem"), cluster_pem).unwrap();
    fs::write(dir.path().join("token"), "pod-token").unwrap();
    fs::write(dir.path().join("url"), url).unwrap();
    crate::support::run_child_test(TLS_CHILD, |child| {
        child
            .env("SSL_CERT_FILE", dir.path().join("system.pem"))
            .env_remove("SSL_CERT_DIR")
            .env(TLS_CHILD_ENV, dir.path());
    });
}

/// The child process of the test above (with nothing to do when run on its own).
#[cfg(target_os = "linux")]
#[tokio::test]
#[ignore = "run by in_cluster_connections_trust_only_the_cluster_ca_not_the_system_roots"]
async fn in_cluster_tls_child() {
    use oidc_bearer_kubernetes::ReviewError;
    use oidc_bearer_kubernetes::{ApiServer, TokenReview};
    let Some(dir) = std::env::var_os(TLS_CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let url = fs::read_to_string(dir.join("url")).unwrap();
    let in_cluster = |ca: &str| {
        InCluster::new()
            .with_api_server(&url)
            .with_token_path(dir.join("token"))
            .with_ca_path(dir.join(ca))
    };
    // {"alg":"RS256"}.{"sub":"x"}.sig: well-formed, so a review is sent.
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let review = |api: ApiServer| async move {
        match TokenReview::builder(api, AUD)
            .build()
            .unwrap()
            .verify(token)
            .await
        {
            Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                ReviewError::of(&error).cloned().expect("a ReviewError")
            }
            other => panic!("{other:?}"),
        }
    };
    let keys = |cluster: InCluster| async move {
        let verifier = cluster
            .verifier_builder(CLUSTER_ISSUER, AUD)
            .unwrap()
            .build()
            .unwrap();
        match verifier.verify::<KubernetesClaims>(token).await {
            Err(VerifyError::KeysUnavailable { source }) => source,
            other => panic!("{other:?}"),
        }
    };
    let refused = |message: &str| message.contains("UnknownIssuer");

    // The system's roots trust the stand-in: reached (404) without any CA configured.
    let system = ApiServer::builder(&url)
        .with_bearer_token(|| Some("pod-token".into()))
        .build()
        .unwrap();
    assert_eq!(
        review(system).await,
        ReviewError::Fetch(FetchError::Status { status: 404 })
    );

    // The cluster's CA configured: the stand-in's certificate is refused on both paths.
    match review(in_cluster("cluster.pem").api_server().unwrap()).await {
        // A refused certificate is a failure on our side (configuration), not a transport
        // failure of the API server's (s3-grace: it opened object binding's grace period).
        ReviewError::Fetch(FetchError::Local { message, .. }) if refused(&message) => {}
        other => panic!("TokenReview reached a server the cluster CA did not vouch for: {other:?}"),
    }
    match keys(in_cluster("cluster.pem")).await {
        KeysError::Fetch {
            source: FetchError::Local { message, .. },
            ..
        } if refused(&message) => {}
        other => panic!("discovery reached a server the cluster CA did not vouch for: {other:?}"),
    }

    // With the stand-in's own CA as the cluster's, both reach it.
    let api = in_cluster("system.pem").api_server().unwrap();
    assert_eq!(
        review(api).await,
        ReviewError::Fetch(FetchError::Status { status: 404 })
    );
    assert!(
        matches!(
            keys(in_cluster("system.pem")).await,
            KeysError::Fetch {
                source: FetchError::Status { status: 404 },
                ..
            }
        ),
        "discovery with the right CA"
    );
}

/// What `InCluster` answers for a token path that is not a readable token file, found within
/// `bound` on a thread of its own (a read that waits on the path would never answer).
#[cfg(unix)]
fn in_cluster_api_server_error(path: &Path, bound: Duration) -> Option<String> {
    let (sender, answer) = std::sync::mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let built = InCluster::new()
            .with_api_server("http://127.0.0.1:1")
            .with_token_path(path)
            .without_ca()
            .api_server();
        let _ = sender.send(built.map(|_| ()).map_err(|e| e.to_string()));
    });
    match answer.recv_timeout(bound) {
        Ok(built) => Some(built.expect_err("refused")),
        Err(_) => None,
    }
}

/// The pod's token path is read with the client's rules: a FIFO (whose open(2) waits for a writer)
/// is refused at once instead of waited on, a directory or a device is no token file, and a file
/// larger than any token is refused without being read whole.
#[cfg(unix)]
#[test]
fn in_cluster_refuses_a_token_path_that_is_not_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    // Far above any read of a local file, far below forever.
    let bound = Duration::from_secs(20);

    let fifo = dir.path().join("fifo");
    crate::support::mkfifo(&fifo);
    let error = in_cluster_api_server_error(&fifo, bound);
    crate::support::release_fifo_readers(&fifo);
    let error = error.expect("InCluster::api_server waited on the FIFO");
    assert!(error.contains("not a regular file"), "{error}");

    let huge = dir.path().join("huge");
    fs::write(&huge, "a".repeat(1024 * 1024)).unwrap();
    let error = in_cluster_api_server_error(&huge, bound).expect("answered");
    assert!(error.contains("larger than"), "{error}");

    // `/dev/zero` answers forever: read whole, as it once was, it takes all memory.
    for path in [dir.path(), Path::new("/dev/null"), Path::new("/dev/zero")] {
        let error = in_cluster_api_server_error(path, bound).expect("answered");
        assert!(error.contains("not a regular file"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}

/// The cluster CA path is mounted next to the token and configured the same way: a FIFO there is
/// refused at once, as at the token path, instead of waited on for a writer.
///
/// Review finding (s3-review-file): `InCluster` reads the CA with `fs::read`, without the shared
/// safe read its token file now uses (a FIFO hangs the start, `/dev/zero` takes all memory).
#[cfg(unix)]
#[test]
fn in_cluster_refuses_a_ca_path_that_is_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    fs::write(&token, "a-token").unwrap();
    let fifo = dir.path().join("ca.crt");
    crate::support::mkfifo(&fifo);
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let built = InCluster::new()
            .with_api_server("http://127.0.0.1:1")
            .with_token_path(token)
            .with_ca_path(fifo)
            .api_server();
        let _ = sender.send(built.map(|_| ()).map_err(|e| e.to_string()));
    });
    // Far above any read of a local file, far below forever.
    let built = answer.recv_timeout(Duration::from_secs(20));
    crate::support::release_fifo_readers(&dir.path().join("ca.crt"));
    let built = built.expect("InCluster::api_server waited on a FIFO at the CA path");
    assert!(built.is_err(), "a FIFO accepted as the cluster CA");
}

/// A cluster CA that did not sign the API server's certificate (the CA of another cluster, a
/// stale bundle) is our own configuration, which no outage of the API server explains: the
/// object-binding check must open no grace period for it (a deleted pod's token passes then),
/// and call it what it is (a configuration error, logged at ERROR naming what to change).
///
/// Review finding (s3-review-file2): the failed TLS handshake is a `Fetch(Transport)`, which
/// `is_api_server_failure()` counts as an outage (and `is_configuration()` does not count as
/// ours).
#[tokio::test]
async fn a_cluster_ca_that_did_not_sign_the_api_server_opens_no_grace_period() {
    use oidc_bearer::VerifyToken as _;
    let cluster = crate::support::cluster::Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, served_by) = test_ca("the API server's CA");
    let (configured_pem, _) = test_ca("another cluster's CA");
    fs::write(dir.path().join("ca.crt"), configured_pem).unwrap();
    let api = cluster
        .in_cluster()
        .with_api_server(https_404_server(&served_by))
        .with_ca_path(dir.path().join("ca.crt"))
        .api_server()
        .unwrap();
    let verifier = in_cluster_bound(&cluster, api, Default::default());
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);

    let result = verifier.verify_token::<KubernetesClaims>(&revoked).await;
    match result {
        Ok(_) => panic!(
            "a deleted pod's token was accepted: a cluster CA that does not match counted as an \
             API-server outage and opened the grace period"
        ),
        Err(ref error @ VerifyError::ReviewUnavailable { .. }) => {
            let source = ReviewError::of(error).expect("a ReviewError");
            assert!(
                !source.is_api_server_failure() && source.is_configuration(),
                "{source:?}"
            )
        }
        Err(other) => panic!("{other:?}"),
    }
}

/// Review (s3-review-grace): the late-timer rule (`FetchError::timed_out`) measures lateness
/// against the request's deadline only, but reqwest's `connect_timeout` (the API server client's
/// 2 s, `tokenreview::api::CONNECT_TIMEOUT`) is a timer of its own, due earlier, around the whole
/// connect (lookup, TCP, TLS). A runtime that sits idle while a review is connecting — here its
/// name lookup finished on a blocking thread while no worker drove the review — past the connect
/// timeout but well before the review's (5 s), finds its connect timer expired when it runs
/// again, before the TLS handshake can complete. That `TimedOut` is "seen in time" against the
/// request's deadline, so it becomes the server's `Timeout`: an outage, and the grace period
/// opens for a deleted pod's token, though the API server (which answers every request at once,
/// 404) was never even asked.
///
/// The `thread::sleep` is the idle period under test (as in object_binding's
/// `a_review_resumed_after_its_runtime_sat_idle_opens_no_grace_period`), not a wait for something.
#[test]
fn a_review_whose_runtime_sat_idle_while_connecting_opens_no_grace_period() {
    use oidc_bearer::VerifyToken as _;
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The reviews' runtime: one worker (this thread, when it drives it) and one blocking thread.
    let side = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cluster = main.block_on(crate::support::cluster::Cluster::start());
    let (pem, ca) = test_ca("the API server's CA");
    let url = https_404_server_named(&ca, "localhost");
    // Our credential at once (no token file read, which would wait for the blocking thread too).
    let caller = cluster.reviews.caller_token();
    let api = oidc_bearer_kubernetes::ApiServer::builder(url)
        .with_ca_pem(pem)
        .with_bearer_token(move || Some(caller.clone()))
        .build()
        .unwrap();
    let revoked = cluster.token().sign();
    cluster.reviews.delete_bound_object(&revoked);
    let (verifier, control) = side.block_on(async {
        let (verifier, control) = (
            in_cluster_bound(&cluster, api, Default::default()),
            in_cluster_verifier(&cluster),
        );
        // Keys loaded (and the token file read) while the runtime is driven, by the bound
        // verifier's own inner verifier (no review): else its first call fetches them, and each
        // fetch waits for the held blocking thread (the token file) for its 5 s bound.
        control
            .verify_token::<KubernetesClaims>(&revoked)
            .await
            .unwrap();
        verifier
            .get_ref()
            .verify_token::<KubernetesClaims>(&revoked)
            .await
            .unwrap();
        (verifier, control)
    });
    drop(control);

    // The side runtime's one blocking thread held, so that the review stops at its name lookup.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let blocker = side.spawn_blocking(move || {
        started.send(()).unwrap();
        let _ = held.recv();
    });
    running.recv().unwrap();
    side.block_on(async {
        let mut first = Box::pin(verifier.verify_token::<KubernetesClaims>(&revoked));
        // Driven until the review is sent: `reviews` counts it just before `ApiServer::review` is
        // polled, in the same poll that starts the connect and its lookup.
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending(), "answered at once");
            if verifier.check().stats().reviews == 1 {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    });
    // The lookup runs now (a blocking thread needs no worker) while the runtime sits idle past
    // the connect timeout (2 s), well before the review's timeout (5 s).
    release.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let result = side.block_on(async {
        blocker.await.unwrap();
        verifier.verify_token::<KubernetesClaims>(&revoked).await
    });
    match result {
        Ok(_) => panic!(
            "a deleted pod's token was accepted: a runtime idle while connecting counted as an \
             API-server outage and opened the grace period"
        ),
        Err(error @ VerifyError::ReviewUnavailable { .. }) => {
            let source = ReviewError::of(&error).expect("a ReviewError");
            assert!(!source.is_api_server_failure(), "{source:?}")
        }
        Err(_) => {}
    }
    drop(main);
}

/// Set in the process that `a_proxy_refusing_our_connect_opens_no_grace_period` starts: the URL
/// of its proxy.
const PROXY_CHILD: &str = "OIDC_BEARER_TEST_PROXY_407";

/// Review (s3-review-grace): an HTTPS proxy in the environment (`HTTPS_PROXY`, honoured by the
/// API server's client as client-go honours it) that refuses our `CONNECT` — 407, credentials it
/// wants and we do not send (or 403, its rules) — is our configuration: nothing reached the API
/// server. reqwest reports hyper-util's `TunnelError::ProxyAuthRequired` (or
/// `TunnelUnsuccessful`), which `FetchError::of` leaves `Transport`: an API-server outage, and
/// object binding's grace period opens for a deleted pod's token.
///
/// Run in a process of its own (the proxy comes from the environment).
#[test]
fn a_proxy_refusing_our_connect_opens_no_grace_period() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    // The CONNECTs the proxy refused: the child's review went through it.
    let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&connects);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            if head.starts_with(b"CONNECT ") {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
            );
        }
    });
    let child = std::panic::catch_unwind(|| {
        crate::support::run_child_test(
            "kubernetes::a_proxy_refusing_our_connect_in_a_process_of_its_own",
            |child| {
                for name in [
                    "NO_PROXY",
                    "no_proxy",
                    "HTTP_PROXY",
                    "http_proxy",
                    "ALL_PROXY",
                ] {
                    child.env_remove(name);
                }
                child
                    .env(PROXY_CHILD, &proxy)
                    .env("HTTPS_PROXY", &proxy)
                    .env("https_proxy", &proxy);
            },
        )
    });
    assert!(
        connects.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the review did not go through the proxy"
    );
    if let Err(panic) = child {
        std::panic::resume_unwind(panic);
    }
}

#[test]
#[ignore = "run by a_proxy_refusing_our_connect_opens_no_grace_period, in a process of its own"]
fn a_proxy_refusing_our_connect_in_a_process_of_its_own() {
    if std::env::var_os(PROXY_CHILD).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cluster = crate::support::cluster::Cluster::start().await;
        let caller = cluster.reviews.caller_token();
        // Any https URL: the proxy answers the CONNECT for it.
        let api = oidc_bearer_kubernetes::ApiServer::builder("https://127.0.0.1:6443")
            .with_bearer_token(move || Some(caller.clone()))
            .build()
            .unwrap();
        review_through_a_proxy_opens_no_grace(&cluster, api, "a proxy refusing our CONNECT (407)")
            .await;
    });
}

/// Set in the process that a `review3_*` proxy test starts: the URL of the API server it reviews
/// against (through the environment's proxy).
const REVIEW3_CHILD: &str = "OIDC_BEARER_TEST_REVIEW3_API";

/// A proxy on 127.0.0.1 that reads each request head, counts it, then `answer`s it: `None` holds
/// the connection open without a word (a hung proxy). Returns its URL and the count.
fn review3_proxy(answer: Option<&'static [u8]>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match answer {
                Some(answer) => {
                    let _ = stream.write_all(answer);
                }
                None => held.push(stream),
            }
        }
    });
    (proxy, requests)
}

/// Runs `review3_child` in a process of its own with `proxy` as the environment's proxy for
/// `api` (`HTTPS_PROXY` and `HTTP_PROXY`, lower case too; `NO_PROXY` only `127.0.0.1`, where the
/// cluster's keys are fetched: `api` names `localhost`), and asserts the review went through the
/// proxy.
fn review3_through_proxy(api: &str, proxy: &str, requests: &std::sync::atomic::AtomicUsize) {
    review_in_a_child_through_proxy("kubernetes::review3_child", api, proxy, requests);
}

/// [`review3_through_proxy`] with the child test `child` (which reads `REVIEW3_CHILD`).
fn review_in_a_child_through_proxy(
    child: &str,
    api: &str,
    proxy: &str,
    requests: &std::sync::atomic::AtomicUsize,
) {
    let child = std::panic::catch_unwind(|| {
        crate::support::run_child_test(child, |child| {
            for name in ["ALL_PROXY", "all_proxy"] {
                child.env_remove(name);
            }
            child
                .env(REVIEW3_CHILD, api)
                .env("NO_PROXY", "127.0.0.1")
                .env("no_proxy", "127.0.0.1")
                .env("HTTPS_PROXY", proxy)
                .env("https_proxy", proxy)
                .env("HTTP_PROXY", proxy)
                .env("http_proxy", proxy);
        })
    });
    assert!(
        requests.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the review did not go through the proxy"
    );
    if let Err(panic) = child {
        std::panic::resume_unwind(panic);
    }
}

/// Review 3 (s3-review-grace3): `tokenreview::api` maps only a `Transport` failure to
/// `LocalCause::Proxy` when the environment's proxy applies. A proxy that accepts the TCP
/// connection and never answers our `CONNECT` (hung, overloaded, or holding it for a rule) lets
/// the client's connect timeout (2 s, which wraps the tunnel: reqwest `Connector::call`'s
/// `with_timeout(connect_via_proxy…)`) fire: a `FetchError::Timeout`, the API server's failure,
/// though nothing reached it: the grace period opens for a deleted pod's token.
#[test]
fn review3_a_hung_proxy_opens_no_grace_period() {
    let (proxy, requests) = review3_proxy(None);
    // Any https URL: nothing gets past the proxy.
    review3_through_proxy("https://localhost:6443", &proxy, &requests);
}

/// Review 3 (s3-review-grace3): plain `http` on loopback is allowed for the API server, and
/// hyper-util's matcher sends it through `HTTP_PROXY` (no loopback exception without `NO_PROXY`).
/// A forward proxy answers for the server it could not reach — 502/503/504 — and that status is a
/// `FetchError::Status` the API server's (only `Transport` is mapped to `LocalCause::Proxy`):
/// the grace period opens though the API server was never asked.
#[test]
fn review3_a_forward_proxys_503_opens_no_grace_period() {
    review_through_a_forward_proxy(
        "kubernetes::review3_child",
        Some(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    );
}

/// Runs `child` through a proxy that `answer`s plain-`http` requests itself (`None`: holds them)
/// for an API server on a loopback port nobody listens on: only the proxy answers.
fn review_through_a_forward_proxy(child: &str, answer: Option<&'static [u8]>) {
    let (proxy, requests) = review3_proxy(answer);
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://localhost:{}", unused.local_addr().unwrap().port());
    drop(unused);
    review_in_a_child_through_proxy(child, &api, &proxy, &requests);
}

#[test]
#[ignore = "run by the review3_* proxy tests, in a process of its own"]
fn review3_child() {
    in_a_review3_child(async |cluster, api| {
        review_through_a_proxy_opens_no_grace(cluster, api, "the proxy's failure").await
    });
}

/// In a child started with `REVIEW3_CHILD`: `body` with the cluster and the API server at that
/// URL, on a runtime of its own. Without it, nothing.
fn in_a_review3_child(
    body: impl AsyncFnOnce(&crate::support::cluster::Cluster, oidc_bearer_kubernetes::ApiServer),
) {
    let Some(api) = std::env::var_os(REVIEW3_CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cluster = crate::support::cluster::Cluster::start().await;
        let api = review3_child_api(&cluster, api);
        body(&cluster, api).await;
    });
}

/// The API server at `api` (`REVIEW3_CHILD`), with the cluster's caller token.
fn review3_child_api(
    cluster: &crate::support::cluster::Cluster,
    api: std::ffi::OsString,
) -> oidc_bearer_kubernetes::ApiServer {
    let caller = cluster.reviews.caller_token();
    // Plain `http` is allowed on loopback; `localhost` spelled out as allowed too.
    oidc_bearer_kubernetes::ApiServer::builder(api.into_string().unwrap())
        .dangerous_allow_insecure_http()
        .with_bearer_token(move || Some(caller.clone()))
        .build()
        .unwrap()
}

/// In a child whose environment names a proxy: an object-binding check reviewing through `api`
/// must refuse a deleted pod's token, and record no API-server failure, whatever the proxy did.
async fn review_through_a_proxy_opens_no_grace(
    cluster: &crate::support::cluster::Cluster,
    api: oidc_bearer_kubernetes::ApiServer,
    what: &str,
) {
    let settings = oidc_bearer_kubernetes::TokenReviewSettings::default();
    reviews_through_a_proxy_open_no_grace(cluster, api, what, settings, 1).await;
}

/// [`review_through_a_proxy_opens_no_grace`] for `rounds` tokens in turn, with `settings`.
async fn reviews_through_a_proxy_open_no_grace(
    cluster: &crate::support::cluster::Cluster,
    api: oidc_bearer_kubernetes::ApiServer,
    what: &str,
    settings: oidc_bearer_kubernetes::TokenReviewSettings,
    rounds: usize,
) {
    use oidc_bearer::VerifyToken as _;
    let verifier = in_cluster_bound(cluster, api, settings);
    for round in 0..rounds {
        let revoked = cluster.token().sign();
        cluster.reviews.delete_bound_object(&revoked);
        match verifier.verify_token::<KubernetesClaims>(&revoked).await {
            Ok(_) => panic!(
                "round {round}: a deleted pod's token was accepted: {what} counted as an API-server outage and \
                 opened the grace period"
            ),
            Err(error @ VerifyError::ReviewUnavailable { .. }) => {
                let source = ReviewError::of(&error).expect("a ReviewError");
                assert!(!source.is_api_server_failure(), "{source:?}");
                // Review 4: through a proxy, what is logged must not blame the API server or our
                // RBAC alone (a proxy's 403 is no missing `create` on `tokenreviews`).
                assert!(
                    source.to_string().contains("proxy"),
                    "through a proxy, logged as {} (is_configuration: {}): {source}",
                    source.code(),
                    source.is_configuration()
                );
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// Review 4 (s3-review-grace4): plain `http` through `HTTP_PROXY` (loopback is not exempt): a
/// forward proxy that refuses the request by policy answers 403 itself, and `ApiServer::review`
/// maps any 401/403 to `ReviewError::Unauthorized` before `through_proxy` is consulted, logged at
/// ERROR as our own RBAC misconfiguration ("grant `create` on `tokenreviews`"), the wrong thing to
/// change. Fail-closed (no grace period), but a misleading diagnosis.
#[test]
fn review4_a_forward_proxys_403_is_not_blamed_on_our_rbac() {
    review_through_a_forward_proxy(
        "kubernetes::review3_child",
        Some(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    );
}

/// Review 4 (s3-review-grace4): as above, with the proxy asking for its own credentials (407 to a
/// plain-`http` request): a `FetchError::Status` 407, shown as "the API server answered HTTP 407"
/// and logged at ERROR as TokenReview misconfigured, though the API server was never asked.
#[test]
fn review4_a_forward_proxys_407_is_not_blamed_on_the_api_server() {
    review_through_a_forward_proxy(
        "kubernetes::review3_child",
        Some(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    );
}

/// Review 4 (s3-review-grace4): `through_proxy` maps the timeouts of `shared::send` (now `Request::send`) and
/// `Response::body`, but `Reviewer::call` runs `ApiServer::review` under a `tokio::time::timeout`
/// of its own, of the same length and started a few microseconds earlier, whose expiry becomes
/// `FetchError::timed_out(..)` = `Timeout` without passing through `through_proxy`. Tokio's timer
/// rounds both deadlines up to the millisecond: when they round to the same tick the inner one is
/// seen first (mapped to `LocalCause::Proxy`), but whenever a millisecond boundary falls between
/// the two starts the outer one wins, and a proxy that holds the request (plain `http` through
/// `HTTP_PROXY`; or any request, once a `CONNECT` tunnel stops relaying, or with a review timeout
/// at most the 2 s connect timeout) is recorded as the API server's outage. Each review is a new
/// draw: over many tokens one wins, and the grace period opens for all of them.
#[test]
fn review4_a_proxy_holding_many_reviews_never_opens_the_grace_period() {
    review_through_a_forward_proxy("kubernetes::review4_child", None);
}

/// Review 4 (s3-review-grace4): the same race over `https`, the way an API server is reached: a
/// proxy that never answers our `CONNECT`, with a review timeout at most the 2 s connect timeout
/// (so that only the total timeouts, the reviewer's and reqwest's, can fire).
#[test]
fn review4_a_hung_connect_under_a_short_review_timeout_never_opens_the_grace_period() {
    let (proxy, requests) = review3_proxy(None);
    let api = "https://localhost:6443";
    review_in_a_child_through_proxy("kubernetes::review4_child", api, &proxy, &requests);
}

#[test]
#[ignore = "run by the review4_* proxy tests, in a process of its own"]
fn review4_child() {
    in_a_review3_child(async |cluster, api| {
        // A short timeout: each review is one draw of the race; the proxy never answers.
        let mut settings = oidc_bearer_kubernetes::TokenReviewSettings::default();
        settings.timeout = Duration::from_millis(10);
        let what = "a timeout through a proxy holding the request";
        reviews_through_a_proxy_open_no_grace(cluster, api, what, settings, 150).await;
    });
}

/// This cluster's in-cluster verifier (keys from its API server, a ManualClock).
fn in_cluster_verifier(cluster: &crate::support::cluster::Cluster) -> Verifier {
    cluster
        .in_cluster()
        .verifier_builder(cluster.issuer.issuer(), crate::support::cluster::AUD)
        .unwrap()
        .with_clock(ManualClock::new())
        .build()
        .unwrap()
}

/// [`in_cluster_verifier`] under an object-binding check (interval 30 s, the default grace period)
/// that reviews at `api` with `settings`.
fn in_cluster_bound(
    cluster: &crate::support::cluster::Cluster,
    api: oidc_bearer_kubernetes::ApiServer,
    settings: oidc_bearer_kubernetes::TokenReviewSettings,
) -> oidc_bearer_kubernetes::ObjectBinding<Verifier> {
    oidc_bearer_kubernetes::ObjectBindingCheck::new(Duration::from_secs(30))
        .with_settings(settings)
        .with_api_server(api)
        .wrap(in_cluster_verifier(cluster))
        .unwrap()
}
