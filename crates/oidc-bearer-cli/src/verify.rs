//! `oidc-bearer verify`: the library's own [`Verifier`], with its defaults, and a report of each rule.
//!
//! The verifier decides; this module only explains. It stops at the first rule that fails, in the
//! order the library checks (structure, algorithm, `typ`, key, signature, then the claims: go-oidc
//! and this library check the signature before any claim, CVE-2025-27144), so the rules after a
//! failure are reported as not checked.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use oidc_bearer::keys::{Jwks, StaticKeySet};
use oidc_bearer::{Phase, VerifyError};
use oidc_bearer::{Verifier, VerifierBuilder};
use oidc_bearer_kubernetes::dangerous_legacy_service_account_verifier;
use serde_json::{Value, json};

use crate::jwt::{self, Decoded};
use crate::output::{self, date, relative, say, time_text};
use crate::{HttpArgs, Outcome, UsageError};

/// The library's default token size cap (`VerifierBuilder::with_max_token_bytes`), for the report.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The library's default clock-skew leeway (`VerifierBuilder::with_leeway`), for the report.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The arguments of `verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The issuer, exactly as tokens name it in `iss` (not needed with `--legacy`).
    #[arg(long, required_unless_present = "legacy")]
    issuer: Option<String>,
    /// An accepted audience (repeat for several; not needed with `--legacy`).
    #[arg(long = "audience", required_unless_present = "legacy")]
    audiences: Vec<String>,
    /// The file holding the token; `-` (the default) reads standard input.
    #[arg(default_value = "-")]
    token: PathBuf,
    /// Use the keys of this JWKS file instead of fetching any.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pem", "jwks_uri"])]
    jwks: Option<PathBuf>,
    /// Use this PEM public key instead of fetching any.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pem: Option<PathBuf>,
    /// The `kid` of the `--pem` key (without it, only tokens without a `kid` match it).
    #[arg(long, requires = "pem")]
    kid: Option<String>,
    /// Fetch the keys from this JWKS URL instead of discovery.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// Fetch discovery from this URL instead of `{issuer}/.well-known/openid-configuration`.
    #[arg(long, value_name = "URL", conflicts_with = "jwks_uri")]
    discovery_url: Option<String>,
    /// DANGEROUS: verify a legacy, secret-based Kubernetes service-account token (never expires, no
    /// audience); needs `--pem` or `--jwks` with the cluster's service-account key.
    #[arg(long, conflicts_with_all = ["issuer", "audiences", "jwks_uri", "discovery_url"])]
    legacy: bool,
    /// Clock-skew leeway for exp, nbf and iat, in seconds (the library's default: 60).
    #[arg(long, value_name = "SECS")]
    leeway: Option<u64>,
    /// Require this header `typ`, e.g. `at+jwt` for RFC 9068 access tokens.
    #[arg(long, value_name = "TYP")]
    typ: Option<String>,
    #[command(flatten)]
    http: HttpArgs,
}

/// One rule of the verification, in the library's order.
struct Rule {
    id: &'static str,
    what: &'static str,
    rfc: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        id: "size",
        what: "token within the size cap",
        rfc: "the verifier's cap, before any parsing",
    },
    Rule {
        id: "structure",
        what: "compact JWS: three base64url segments, JSON header and payload, no unknown crit",
        rfc: "RFC 7515 §7.1, §4.1.11",
    },
    Rule {
        id: "alg",
        what: "header alg accepted (never none, never HMAC with public keys)",
        rfc: "RFC 8725 §3.1",
    },
    Rule {
        id: "typ",
        what: "header typ is the required one",
        rfc: "RFC 9068 §4, RFC 8725 §3.11",
    },
    Rule {
        id: "key",
        what: "the issuer publishes a key for the header's kid and alg",
        rfc: "RFC 7515 §4.1.4, RFC 7517 §4.4",
    },
    Rule {
        id: "signature",
        what: "the signature verifies with that key",
        rfc: "RFC 7515 §5.2",
    },
    Rule {
        id: "iss",
        what: "iss is the issuer",
        rfc: "RFC 7519 §4.1.1",
    },
    Rule {
        id: "aud",
        what: "aud names an accepted audience",
        rfc: "RFC 7519 §4.1.3",
    },
    Rule {
        id: "exp",
        what: "not expired (with leeway); exp present unless allowed",
        rfc: "RFC 7519 §4.1.4",
    },
    Rule {
        id: "nbf",
        what: "already valid (with leeway)",
        rfc: "RFC 7519 §4.1.5",
    },
    Rule {
        id: "iat",
        what: "not issued in the future (with leeway)",
        rfc: "RFC 7519 §4.1.6",
    },
    Rule {
        id: "required",
        what: "required claims present",
        rfc: "the verifier's policy",
    },
];

/// The rule an error of the library belongs to.
fn rule_of(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::TooLarge { .. } => "size",
        VerifyError::Malformed { .. } | VerifyError::UnsupportedCritical { .. } => "structure",
        VerifyError::UnsupportedAlgorithm { .. } | VerifyError::AlgorithmNotAllowed { .. } => "alg",
        VerifyError::InvalidType { .. } => "typ",
        VerifyError::UnknownKey { .. }
        | VerifyError::AmbiguousKey { .. }
        | VerifyError::AlgorithmKeyMismatch { .. }
        | VerifyError::KeysUnavailable { .. } => "key",
        VerifyError::InvalidSignature => "signature",
        VerifyError::IssuerMismatch { .. } | VerifyError::UntrustedIssuer { .. } => "iss",
        VerifyError::AudienceMismatch { .. } => "aud",
        VerifyError::Expired { .. } => "exp",
        VerifyError::NotYetValid { .. } => "nbf",
        VerifyError::IssuedInFuture { .. } => "iat",
        VerifyError::MissingClaim { claim } | VerifyError::InvalidClaim { claim, .. } => {
            match *claim {
                c @ ("iss" | "aud" | "exp" | "nbf" | "iat") => RULES
                    .iter()
                    .find(|r| r.id == c)
                    .map_or("required", |r| r.id),
                _ => "required",
            }
        }
        // Variants without a rule of their own (`VerifyError` is non-exhaustive): by the phase that
        // refused the token.
        other => match other.phase() {
            Phase::Structure => "structure",
            Phase::Header => "alg",
            Phase::Issuer => "iss",
            Phase::Keys | Phase::KeySelection => "key",
            Phase::Signature => "signature",
            _ => "required",
        },
    }
}

/// The error's message, with dates for the times it names.
fn explain(error: &VerifyError, now: i64) -> String {
    let message = error.to_string();
    match error {
        VerifyError::Expired { exp, .. } => {
            format!(
                "{message}: expired at {} ({})",
                date(*exp),
                relative("exp", *exp, now)
            )
        }
        VerifyError::NotYetValid { nbf, .. } => {
            format!(
                "{message}: valid from {} ({})",
                date(*nbf),
                relative("nbf", *nbf, now)
            )
        }
        VerifyError::IssuedInFuture { iat, .. } => {
            format!(
                "{message}: issued at {} ({})",
                date(*iat),
                relative("iat", *iat, now)
            )
        }
        VerifyError::UnknownKey { kid: Some(_) } => {
            format!("{message}: kid not in the issuer's key set (after one refresh)")
        }
        _ => message,
    }
}

/// What a passed rule found, from the decoded token (already checked by the verifier).
fn found(rule: &str, token: Option<&Decoded>, len: usize, args: &VerifyArgs, now: i64) -> String {
    let Some(token) = token else {
        return String::new();
    };
    let header = |name: &str| token.str_header(name).unwrap_or("(none)").to_owned();
    let time = |name: &str| match token.time_claim(name) {
        Some(t) => time_text(name, t, now),
        None => "(absent)".into(),
    };
    match rule {
        "size" => format!("{len} bytes (at most {DEFAULT_MAX_TOKEN_BYTES})"),
        "structure" => "ok".into(),
        "alg" => header("alg"),
        "typ" => header("typ"),
        "key" => format!("kid {}", header("kid")),
        "signature" => format!("{} bytes", token.signature_len),
        "iss" => token.str_claim("iss").unwrap_or("(none)").to_owned(),
        "aud" if args.legacy => "not checked: legacy tokens name no audience".into(),
        "aud" => format!("{:?}", token.audiences()),
        "exp" | "nbf" | "iat" => time(rule),
        "required" if args.legacy => "kubernetes.io/serviceaccount/namespace".into(),
        _ => String::new(),
    }
}

fn read_keys(args: &VerifyArgs) -> Result<Option<Jwks>, UsageError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))
    };
    Ok(match (&args.jwks, &args.pem) {
        (Some(path), _) => Some(
            Jwks::from_json(&read(path)?)
                .map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
        ),
        (None, Some(path)) => Some(
            Jwks::from_pem(&read(path)?, args.kid.as_deref())
                .map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
        ),
        (None, None) => None,
    })
}

/// The verifier the arguments describe: the library's defaults, changed only where asked.
fn verifier(args: &VerifyArgs) -> Result<Verifier, UsageError> {
    let keys = read_keys(args)?;
    let builder: VerifierBuilder = if args.legacy {
        let keys = keys.ok_or_else(|| {
            UsageError("--legacy needs the cluster's service-account key: --pem or --jwks".into())
        })?;
        dangerous_legacy_service_account_verifier(keys)
    } else {
        let issuer = args.issuer.clone().unwrap_or_default();
        let mut audiences = args.audiences.iter();
        let first = audiences.next().cloned().unwrap_or_default();
        let mut builder = Verifier::builder(issuer, first);
        for audience in audiences {
            builder = builder.with_audience(audience);
        }
        if let Some(keys) = keys {
            builder = builder.with_key_set(StaticKeySet::new(keys));
        }
        if let Some(url) = &args.jwks_uri {
            builder = builder.with_jwks_uri(url);
        }
        if let Some(url) = &args.discovery_url {
            builder = builder.with_discovery_url(url);
        }
        builder
    };
    let mut builder = crate::http::with_http_args(builder, &args.http)?;
    if let Some(secs) = args.leeway {
        builder = builder.with_leeway(Duration::from_secs(secs));
    }
    if let Some(typ) = &args.typ {
        builder = builder.with_required_typ(typ);
    }
    Ok(builder.without_token_cache().build()?)
}

/// Verifies and reports; exit status 0 when accepted.
pub(crate) async fn run(args: VerifyArgs, json: bool) -> Result<Outcome, UsageError> {
    let token = crate::input::read_token(&args.token)?;
    let verifier = verifier(&args)?;
    let result = verifier.verify::<Value>(&token).await;
    let now = output::now();
    let decoded = jwt::decode(&token).ok();
    let failed = result.as_ref().err().map(rule_of);
    let mut past_failure = false;
    let mut rules = Vec::new();
    for rule in RULES {
        let applies = match rule.id {
            "typ" => args.typ.is_some(),
            "required" => args.legacy,
            _ => true,
        };
        let (status, detail) = if !applies {
            ("skipped", "not required by this verifier".to_owned())
        } else if past_failure {
            (
                "not_checked",
                "verification stops at the first failure".to_owned(),
            )
        } else if Some(rule.id) == failed {
            past_failure = true;
            let error = result.as_ref().err().map(|e| explain(e, now));
            ("fail", error.unwrap_or_default())
        } else {
            (
                "pass",
                found(rule.id, decoded.as_ref(), token.len(), &args, now),
            )
        };
        rules.push(json!({
            "rule": rule.id, "checks": rule.what, "rfc": rule.rfc, "status": status, "detail": detail,
        }));
    }
    let leeway = args.leeway.unwrap_or(DEFAULT_LEEWAY.as_secs());
    if json {
        let mut report = json!({
            "accepted": result.is_ok(),
            "issuer": verifier.issuer(),
            "audiences": verifier.audiences(),
            "leeway_secs": leeway,
            "rules": rules,
        });
        match &result {
            Ok(claims) => report["claims"] = claims.clone(),
            Err(e) => {
                report["code"] = json!(e.code());
                report["error"] = json!(e.to_string());
            }
        }
        output::print_json(&report);
    } else {
        match &result {
            Ok(_) => say!("ACCEPTED by the verifier of {}", verifier.issuer()),
            Err(e) => say!("REFUSED [{}]: {e}", e.code()),
        }
        say!("  (leeway {leeway} s; the verdict is the library's own `Verifier`)");
        for rule in &rules {
            let status = match rule["status"].as_str() {
                Some("pass") => "pass",
                Some("fail") => "FAIL",
                Some("skipped") => "skip",
                _ => "  - ",
            };
            say!(
                "  {status}  {:<9}  {}  [{}]",
                rule["rule"].as_str().unwrap_or_default(),
                rule["detail"].as_str().unwrap_or_default(),
                rule["rfc"].as_str().unwrap_or_default(),
            );
        }
    }
    Ok(if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Refused
    })
}
