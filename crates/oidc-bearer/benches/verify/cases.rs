//! What is measured: one `Case` per algorithm (a token, its key, verifiers with the cache off and
//! on), the layer case, and the rejections.

use super::*;

pub(crate) struct Case {
    pub(crate) alg: KeyAlg,
    pub(crate) token: String,
    pub(crate) fresh: Vec<String>,
    pub(crate) message: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) aws_key: ParsedPublicKey,
    /// jsonwebtoken's key, algorithm and validation, where it supports the algorithm.
    pub(crate) jwt: Option<(
        jsonwebtoken::DecodingKey,
        jsonwebtoken::Algorithm,
        jsonwebtoken::Validation,
    )>,
    pub(crate) uncached: Verifier,
    pub(crate) cached: Verifier,
    pub(crate) churn: Verifier,
    pub(crate) next_fresh: std::cell::Cell<usize>,
}

impl Case {
    pub(crate) fn new(alg: KeyAlg) -> Self {
        let issuer = TestIssuer::builder().key(alg).start_blocking();
        let mint = || {
            issuer
                .token()
                .kubernetes("payments", "checkout")
                .aud(AUD)
                .sign()
        };
        let token = mint();
        let fresh: Vec<String> = (0..FRESH_TOKENS).map(|_| mint()).collect();
        let jwk = issuer.public_jwk(&issuer.signing_kid());
        let jwks_json = serde_json::to_vec(&issuer.jwks_json()).unwrap();

        let (input, signature) = token.rsplit_once('.').unwrap();
        let message = input.as_bytes().to_vec();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let aws_key = aws_key(alg, &jwk);

        let jwt = alg
            .name()
            .parse::<jsonwebtoken::Algorithm>()
            .ok()
            .map(|jwt_alg| {
                let jwt_key =
                    jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap())
                        .unwrap();
                let mut jwt_validation = jsonwebtoken::Validation::new(jwt_alg);
                jwt_validation.set_audience(&[AUD]);
                jwt_validation.set_issuer(&[issuer.issuer()]);
                jwt_validation.leeway = 60;
                jwt_validation.validate_nbf = true;
                (jwt_key, jwt_alg, jwt_validation)
            });

        let verifier = |cache: Option<TokenCacheSettings>| {
            let builder = Verifier::builder(issuer.issuer(), AUD)
                .with_key_set(StaticKeySet::new(Jwks::from_json(&jwks_json).unwrap()));
            match cache {
                Some(settings) => builder.with_token_cache(settings),
                None => builder.without_token_cache(),
            }
            .build()
            .unwrap()
        };
        // A cache far smaller than the cycle of fresh tokens: every lookup misses.
        let mut small = TokenCacheSettings::default();
        small.max_entries = 16;
        let case = Self {
            alg,
            token,
            fresh,
            message,
            signature,
            aws_key,
            jwt,
            uncached: verifier(None),
            cached: verifier(Some(TokenCacheSettings::default())),
            churn: verifier(Some(small)),
            next_fresh: std::cell::Cell::new(0),
        };
        // Every variant accepts the token before it is timed.
        assert!(case.signature_only());
        if case.jwt.is_some() {
            assert!(case.jsonwebtoken_signature());
            case.jsonwebtoken_decode();
        }
        case.ours_uncached();
        case.ours_uncached_default_claims();
        case.ours_hit();
        case.ours_miss();
        case
    }

    pub(crate) fn signature_only(&self) -> bool {
        self.aws_key
            .verify_sig(black_box(&self.message), black_box(&self.signature))
            .is_ok()
    }

    pub(crate) fn jsonwebtoken_signature(&self) -> bool {
        let (key, alg, _) = self.jwt.as_ref().unwrap();
        let signature = self.token.rsplit_once('.').unwrap().1;
        jsonwebtoken::crypto::verify(signature, &self.message, key, *alg).unwrap()
    }

    pub(crate) fn jsonwebtoken_decode(&self) -> WorkloadClaims {
        let (key, _, validation) = self.jwt.as_ref().unwrap();
        jsonwebtoken::decode::<WorkloadClaims>(black_box(&self.token), key, validation)
            .unwrap()
            .claims
    }

    pub(crate) fn ours_uncached(&self) -> Arc<WorkloadClaims> {
        now_or_never(self.uncached.verify_token(black_box(&self.token))).unwrap()
    }

    pub(crate) fn ours_uncached_default_claims(&self) -> Arc<DefaultClaims> {
        now_or_never(self.uncached.verify_token(black_box(&self.token))).unwrap()
    }

    pub(crate) fn ours_hit(&self) -> Arc<WorkloadClaims> {
        now_or_never(self.cached.verify_token(black_box(&self.token))).unwrap()
    }

    pub(crate) fn ours_miss(&self) -> Arc<WorkloadClaims> {
        let i = self.next_fresh.get();
        self.next_fresh.set((i + 1) % self.fresh.len());
        now_or_never(self.churn.verify_token(black_box(&self.fresh[i]))).unwrap()
    }

    /// [`ours_hit`](Self::ours_hit), never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    pub(crate) fn hit_call(&self) -> Arc<WorkloadClaims> {
        self.ours_hit()
    }

    /// [`ours_miss`](Self::ours_miss), never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    pub(crate) fn miss_call(&self) -> Arc<WorkloadClaims> {
        self.ours_miss()
    }
}

/// The HTTP layer's cost per request with a cached token: the same request through a bare tower
/// service and through `BearerAuth` in front of it.
pub(crate) struct LayerCase {
    pub(crate) request: http::Request<()>,
    pub(crate) bare:
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    pub(crate) layered:
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    pub(crate) registry:
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    pub(crate) token: String,
}

impl LayerCase {
    pub(crate) fn new(case: &Case) -> Self {
        use tower::{Layer as _, ServiceExt as _};
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            black_box(&req);
            Ok::<_, Infallible>(http::Response::new(String::new()))
        });
        let layer =
            oidc_bearer::BearerAuthLayer::new(case.cached.clone()).claims::<DefaultClaims>();
        let request = http::Request::get("/private")
            .header("authorization", format!("Bearer {}", case.token))
            .body(())
            .unwrap();
        // The same verifier as the one issuer of a registry (a service trusting several clusters).
        let registry = oidc_bearer_registry::IssuerRegistry::builder()
            .with_verifier(case.cached.clone())
            .build()
            .unwrap();
        let registry = oidc_bearer::BearerAuthLayer::new(registry).claims::<DefaultClaims>();
        let this = Self {
            request,
            bare: inner.boxed_clone(),
            layered: layer.layer(inner).boxed_clone(),
            registry: registry.layer(inner).boxed_clone(),
            token: case.token.clone(),
        };
        for service in [&this.bare, &this.layered, &this.registry] {
            assert_eq!(this.call(service), http::StatusCode::OK);
        }
        this
    }

    pub(crate) fn call(
        &self,
        service: &tower::util::BoxCloneService<
            http::Request<()>,
            http::Response<String>,
            Infallible,
        >,
    ) -> http::StatusCode {
        use tower::Service as _;
        let mut request = http::Request::new(());
        *request.headers_mut() = self.request.headers().clone();
        now_or_never(service.clone().call(request))
            .unwrap()
            .status()
    }

    /// A cached request through `BearerAuth`; never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    pub(crate) fn layered_call(&self) -> http::StatusCode {
        self.call(&self.layered)
    }

    /// A cached request through `BearerAuth` over an `IssuerRegistry` (its index of recent tokens,
    /// then the issuer's token cache); never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    pub(crate) fn registry_call(&self) -> http::StatusCode {
        self.call(&self.registry)
    }

    /// What a cache lookup hashes: the SHA-256 of the token's signature segment.
    pub(crate) fn sha256(&self) -> u8 {
        use sha2::Digest as _;
        let (_, signature) = self.token.rsplit_once('.').unwrap();
        sha2::Sha256::digest(black_box(signature.as_bytes()))[0]
    }
}

/// The same key as the verifier prepares, for the bare signature check.
pub(crate) fn aws_key(alg: KeyAlg, jwk: &Value) -> ParsedPublicKey {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let (params, der): (&'static dyn sig::VerificationAlgorithm, Vec<u8>) = match alg {
        KeyAlg::RS256 | KeyAlg::PS256 => {
            let (n, e) = (field("n"), field("e"));
            let der = aws_lc_rs::rsa::PublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec();
            let params: &'static dyn sig::VerificationAlgorithm = if alg == KeyAlg::RS256 {
                &sig::RSA_PKCS1_2048_8192_SHA256
            } else {
                &sig::RSA_PSS_2048_8192_SHA256
            };
            (params, der)
        }
        KeyAlg::ES256 | KeyAlg::ES512 => {
            let mut point = vec![4];
            point.extend(field("x"));
            point.extend(field("y"));
            let params: &'static dyn sig::VerificationAlgorithm = if alg == KeyAlg::ES256 {
                &sig::ECDSA_P256_SHA256_FIXED
            } else {
                &sig::ECDSA_P521_SHA512_FIXED
            };
            (params, point)
        }
        KeyAlg::EdDSA | KeyAlg::Ed25519 => (&sig::ED25519, field("x")),
        KeyAlg::MlDsa44 => (&sig::ML_DSA_44, field("pub")),
        KeyAlg::MlDsa65 => (&sig::ML_DSA_65, field("pub")),
        KeyAlg::MlDsa87 => (&sig::ML_DSA_87, field("pub")),
        other => unreachable!("not benchmarked: {other}"),
    };
    ParsedPublicKey::new(params, &der).unwrap()
}

/// Tokens that must be refused, and the verifiers refusing them.
pub(crate) struct Rejects {
    pub(crate) verifier: Verifier,
    pub(crate) forged_kid_verifier: Verifier,
    pub(crate) _issuer: TestIssuer,
    pub(crate) malformed: String,
    pub(crate) oversized: String,
    pub(crate) bad_base64: String,
    pub(crate) bad_signature: String,
    pub(crate) forged_kid: Vec<String>,
    pub(crate) next_forged: std::cell::Cell<usize>,
    /// `verifier` behind `BearerAuth`, for the refusal's cost through the layer.
    pub(crate) layered:
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    /// The same verifier as the one exact issuer of an `IssuerRegistry` behind `BearerAuth`, as
    /// examples/resource-server serves it.
    pub(crate) registry_layered:
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    /// `Authorization` values with distinct bad signatures (one bit flipped, a valid base64url
    /// encoding of the right length): each a forged token the verifier has not seen.
    pub(crate) forgeries: Vec<http::HeaderValue>,
    pub(crate) next_forgery: std::cell::Cell<usize>,
}

impl Rejects {
    pub(crate) fn new(runtime: &tokio::runtime::Runtime) -> Self {
        let issuer = TestIssuer::builder().key(KeyAlg::RS256).start_blocking();
        let jwks_json = serde_json::to_vec(&issuer.jwks_json()).unwrap();
        let verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_key_set(StaticKeySet::new(Jwks::from_json(&jwks_json).unwrap()))
            .build()
            .unwrap();
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            black_box(&req);
            Ok::<_, Infallible>(http::Response::new(String::new()))
        });
        let layered = {
            use tower::{Layer as _, ServiceExt as _};
            oidc_bearer::BearerAuthLayer::new(verifier.clone())
                .claims::<WorkloadClaims>()
                .layer(inner)
                .boxed_clone()
        };
        let registry_layered = {
            use tower::{Layer as _, ServiceExt as _};
            let registry = oidc_bearer_registry::IssuerRegistry::builder()
                .with_verifier(verifier.clone())
                .build()
                .unwrap();
            oidc_bearer::BearerAuthLayer::new(registry)
                .claims::<WorkloadClaims>()
                .layer(inner)
                .boxed_clone()
        };
        // Forged kids go through the real remote key set: the first loads the keys, the rest
        // fall inside the refresh cooldown (the clock does not move), so none may fetch.
        let forged_kid_verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_clock(ManualClock::new())
            .build()
            .unwrap();
        runtime.block_on(forged_kid_verifier.ready()).unwrap();
        let valid = issuer
            .token()
            .kubernetes("payments", "checkout")
            .aud(AUD)
            .sign();
        let (header, rest) = valid.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let mut flipped = raw.clone();
        flipped[17] ^= 1;
        let forgeries = (0..4096)
            .map(|i| {
                let mut bad = raw.clone();
                bad[(i * 7) % raw.len()] ^= 1 + (i / raw.len()) as u8;
                let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(bad));
                http::HeaderValue::try_from(format!("Bearer {token}")).unwrap()
            })
            .collect();
        let rejects = Self {
            malformed: format!("{header}.{payload}"),
            oversized: "a".repeat(64 * 1024),
            // In the header: refused before any crypto (a payload is not read before the
            // signature holds, so one with bad base64 costs a signature check).
            bad_base64: format!("{}*.{payload}.{signature}", &header[..header.len() - 1]),
            bad_signature: format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(flipped)),
            forged_kid: (0..1024)
                .map(|i| {
                    issuer
                        .token()
                        .kubernetes("payments", "checkout")
                        .aud(AUD)
                        .kid(&format!("forged-{i}"))
                        .sign()
                })
                .collect(),
            next_forged: std::cell::Cell::new(0),
            layered,
            registry_layered,
            forgeries,
            next_forgery: std::cell::Cell::new(0),
            verifier,
            forged_kid_verifier,
            _issuer: issuer,
        };
        for (token, code) in [
            (&rejects.malformed, "malformed"),
            (&rejects.oversized, "token_too_large"),
            (&rejects.bad_base64, "malformed"),
            (&rejects.bad_signature, "invalid_signature"),
        ] {
            assert_eq!(rejects.reject(token).code(), code);
        }
        // Inside the refresh cooldown an unknown `kid` is "retry later" (503) unless the token
        // predates the keys' fetch (verify/keys.rs); either way it is refused without crypto.
        let forged = rejects.forged().code();
        assert!(
            matches!(forged, "unknown_key" | "unknown_key_retry"),
            "{forged}"
        );
        assert_eq!(rejects.layered_refusal(), http::StatusCode::UNAUTHORIZED);
        for registry in [false, true] {
            let response = rejects.fresh_forgery(registry);
            assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
            let rejection = response
                .extensions()
                .get::<oidc_bearer::rejection::AuthRejection>();
            assert_eq!(rejection.unwrap().code(), "invalid_signature");
        }
        rejects
    }

    /// A forged token not sent before (a signature of the right length with a bit flipped)
    /// through `BearerAuth` over the verifier, or over the registry; never inlined, for
    /// callgrind's `--toggle-collect='*fresh_forgery*'`.
    #[inline(never)]
    pub(crate) fn fresh_forgery(&self, registry: bool) -> http::Response<String> {
        use tower::Service as _;
        let i = self.next_forgery.get();
        self.next_forgery.set((i + 1) % self.forgeries.len());
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.forgeries[i].clone());
        let service = if registry {
            &self.registry_layered
        } else {
            &self.layered
        };
        now_or_never(service.clone().call(black_box(request))).unwrap()
    }

    /// The default 401 for a bad signature, alone: what the layer answers a forgery with.
    pub(crate) fn rejection_alone(&self) -> http::Response<String> {
        use oidc_bearer::rejection::{AuthRejection, DefaultRejection, RejectionResponse as _};
        let rejection = AuthRejection::InvalidToken(VerifyError::InvalidSignature);
        let mut response = DefaultRejection::new().response(black_box(&rejection));
        response.extensions_mut().insert(rejection);
        response
    }

    /// The bad-signature token through `BearerAuth`: the request a flood of forged tokens makes.
    /// Never inlined, so that callgrind can count it alone (`--toggle-collect`).
    #[inline(never)]
    pub(crate) fn layered_refusal(&self) -> http::StatusCode {
        use tower::Service as _;
        let mut request = http::Request::new(());
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::try_from(format!("Bearer {}", self.bad_signature)).unwrap(),
        );
        let request = black_box(request);
        now_or_never(self.layered.clone().call(request))
            .unwrap()
            .status()
    }

    pub(crate) fn reject(&self, token: &str) -> VerifyError {
        now_or_never(
            self.verifier
                .verify_token::<WorkloadClaims>(black_box(token)),
        )
        .unwrap_err()
    }

    pub(crate) fn forged(&self) -> VerifyError {
        let i = self.next_forged.get();
        self.next_forged.set((i + 1) % self.forged_kid.len());
        now_or_never(
            self.forged_kid_verifier
                .verify_token::<WorkloadClaims>(black_box(&self.forged_kid[i])),
        )
        .unwrap_err()
    }
}
